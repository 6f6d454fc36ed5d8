"""CNS losses: target drawing (prediction consistency), cross-entropy, latent consistency."""
