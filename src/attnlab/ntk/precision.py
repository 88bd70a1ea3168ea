"""Exact arithmetic while kernels are computed (defined in attnlab.train.precision, re-exported here)."""

from attnlab.train.precision import exact_matmul

__all__ = ["exact_matmul"]
