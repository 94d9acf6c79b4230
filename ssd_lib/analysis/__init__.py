"""Analysis: spectral statistics of training runs and the geometry of the latent spaces."""
