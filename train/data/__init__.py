"""Reading the stores into training batches: stores, samples, augmentation, batches."""
