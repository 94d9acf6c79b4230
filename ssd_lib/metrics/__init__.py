"""Metrics: Inception FID/KID through pytorch-fid and clean-fid, feature-space distances,
precision/recall, and offline metrics for the embedded data."""
