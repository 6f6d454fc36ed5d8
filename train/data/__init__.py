"""Reading the stores into training batches: stores, samples, augmentation, the item steps
(points → labels → views → pairs) and the batch contract (one field table, one collate)."""
