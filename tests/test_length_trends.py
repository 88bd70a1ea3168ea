"""Trend fits of a quantity against the sequence length (E7)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.report.length_trends import fit_length_trend

T = np.array([2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
JITTER = np.exp(0.05 * np.random.default_rng(0).standard_normal(T.size))


def test_exponential_growth_is_recognised():
    trend = fit_length_trend(T, 0.1 * np.exp(0.03 * T) * JITTER)
    assert trend.verdict == "exponential growth"
    assert trend.rate == pytest.approx(0.03, rel=0.05)


def test_power_law_growth_is_recognised():
    trend = fit_length_trend(T, 3 * T**1.5 * JITTER)
    assert trend.verdict == "power-law growth"
    assert trend.exponent == pytest.approx(1.5, rel=0.05)


def test_flat_and_decay():
    assert fit_length_trend(T, 0.1 * JITTER).verdict == "flat"
    assert fit_length_trend(T, np.exp(-0.05 * T) * JITTER).verdict == "exponential decay"


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        fit_length_trend([1, 2], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        fit_length_trend([1, 2, 3], [1, 0, 2])
