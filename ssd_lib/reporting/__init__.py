"""Reporting: plots, publishing figures and tables with their provenance, notebook
parameters, and the command that executes every notebook (figures)."""
