"""Experiments: the runs the paper needs (suite: which configs, trained and loaded how) and
the published runs committed with the project (published: train, publish, check)."""
