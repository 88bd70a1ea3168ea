"""Synthetic tables for the report tests."""

from __future__ import annotations

import math

import numpy as np


def power_rows(rng: np.random.Generator, alpha: float, widths=(8, 16, 32, 64, 128), seeds: int = 4,
               sigma: float = 0.2, **extra) -> list[dict]:
    """Rows m, seed, error with error = 2 m^alpha exp(sigma N(0,1))."""
    return [{"m": m, "seed": s, **extra, "error": 2 * m ** alpha * math.exp(sigma * rng.standard_normal())}
            for m in widths for s in range(seeds)]
