"""Training engine: build functions and the step loop, its hooks, schedule, checkpoints, distributed setup."""
