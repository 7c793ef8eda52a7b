"""Training: the loop, checkpoints, schedulers and distributed helpers."""
