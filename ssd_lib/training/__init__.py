"""Training: the loop (trainer), its saved state and checkpoints, run folders, health checks
during training, devices and precision, augmentation, and importing the release's weights."""
