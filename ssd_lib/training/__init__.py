"""Training: the loop (trainer), its losses and per-step log, saved state and checkpoints, run
folders, health checks, devices and precision, augmentation, importing the release's weights."""
