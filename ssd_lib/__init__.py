"""ssd_lib: a reproducible companion to "Parameter and Data-Efficient Spectral StyleDCGAN"."""

__version__ = "0.1.0"
