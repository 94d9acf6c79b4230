"""Utilities every layer uses: atomic file writes, file locks, hardware facts, image
conversion and grids, progress bars, the project's error base class and input checks."""
