"""Training engine: schedule, checkpoints, distributed setup, the step loop."""
