"""Compiled kernels for the hot loops of the models, built on first use with the system compiler."""
