"""Generation: drawing samples from a trained generator (sampling) and the interactive latent
explorer built on it."""
