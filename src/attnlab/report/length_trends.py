"""How a positive quantity (gradient norm, training error) scales with the sequence length T (E7).

Two least-squares fits on log values: exponential, log y = a + b T (rate b per step, growth factor
e^b), and power law, log y = a + p log T. The verdict names the better fit when the fitted change
over the T range is at least `flat_factor`; otherwise the quantity counts as flat in T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class LengthTrend:
    """Fitted trends of y against T and the verdict."""

    rate: float            # b of log y = a + b T
    exponent: float        # p of log y = a + p log T
    r2_exponential: float
    r2_power: float
    change: float          # fitted y(T_max) / y(T_min) of the better fit
    verdict: str           # "flat", "exponential growth", "exponential decay", "power-law growth", ...


def _fit(x: np.ndarray, log_y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and R^2 of the least-squares line log_y ~ x."""
    slope, intercept = np.polyfit(x, log_y, 1)
    residual = log_y - (slope * x + intercept)
    total = ((log_y - log_y.mean()) ** 2).sum()
    r2 = 1.0 - float((residual**2).sum() / total) if total > 0 else 1.0
    return float(slope), float(intercept), r2


def fit_length_trend(T: Sequence[float], values: Sequence[float], flat_factor: float = 2.0) -> LengthTrend:
    """Fit y against T (at least 3 distinct T, every y > 0 and finite) and classify the trend."""
    x = np.asarray(T, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or np.unique(x).size < 3:
        raise ValueError(f"T {x.shape} and values {y.shape}: need equal lengths and at least 3 distinct T")
    if not (np.all(np.isfinite(y)) and np.all(y > 0) and np.all(x > 0)):
        raise ValueError("values and T must be positive and finite to fit trends on a log scale")
    log_y = np.log(y)
    rate, _, r2_exp = _fit(x, log_y)
    exponent, _, r2_pow = _fit(np.log(x), log_y)
    exponential = r2_exp >= r2_pow
    span = (x.max() - x.min()) if exponential else math.log(x.max() / x.min())
    log_change = (rate if exponential else exponent) * span
    change = math.exp(log_change)
    if abs(log_change) < math.log(flat_factor):
        verdict = "flat"
    else:
        verdict = ("exponential " if exponential else "power-law ") + ("growth" if log_change > 0 else "decay")
    return LengthTrend(rate, exponent, r2_exp, r2_pow, change, verdict)
