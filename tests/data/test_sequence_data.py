"""Lag-L autoregressive task and recorded-series windows (spec recurrent-baseline.md s. 2 and 4)."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import ConfigError, parse_config
from attnlab.data import build_data
from attnlab.data.sequences import (TOKEN_DIM, ar_lag_best_mse, ar_lag_data, ar_lag_series,
                                    positional_channels, recorded_series, series_data, window_dataset)


def all_targets(data):
    return torch.cat([data.y_train, data.y_val])


def all_inputs(data):
    return torch.cat([data.X_train, data.X_val])


def lag_autocorrelation(x: torch.Tensor, lag: int) -> float:
    x = x - x.mean()
    return float((x[lag:] * x[:-lag]).mean() / (x * x).mean())


@pytest.mark.parametrize("L", [1, 4, 16, 72])
def test_ar_series_has_lag_L_autocorrelation_near_coefficient(L):
    x = ar_lag_series(60_000, L, seed=3)
    assert abs(lag_autocorrelation(x, L) - 0.9) < 0.02
    if L > 1:
        assert abs(lag_autocorrelation(x, 1)) < 0.05
    assert abs(float(x.var()) - 0.1 / (1 - 0.81)) < 0.05


def test_ar_series_follows_its_recurrence_exactly():
    L = 5
    x = ar_lag_series(400, L, seed=0, burn_in=0)
    residual = x[L:] - 0.9 * x[:-L]
    assert abs(float(residual.var()) - 0.1) < 0.03
    assert abs(float(x[:L].var()) - 1) < 1.5      # N(0, 1) start, only L values


def test_ar_task_shapes_standardised_targets_and_split():
    data = ar_lag_data(L=4, seed=0, n=1000)
    assert data.X_train.shape == (800, 5, TOKEN_DIM) and data.X_val.shape == (200, 5, TOKEN_DIM)
    y = all_targets(data)
    assert abs(float(y.mean())) < 1e-12 and abs(float(y.var(correction=0)) - 1) < 1e-12
    assert torch.equal(all_inputs(data)[:, :, 1:], positional_channels(5).expand(1000, 5, 16))


def test_only_the_lag_L_token_is_informative_and_best_mse_is_019():
    L = 6
    data = ar_lag_data(L=L, seed=2, n=5000)
    X, y = all_inputs(data), all_targets(data)
    values = X[:, :, 0]
    design = torch.cat([values, torch.ones(len(y), 1, dtype=y.dtype)], dim=1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)
    mse = float(((design @ coef - y) ** 2).mean())
    assert abs(mse - ar_lag_best_mse()) < 0.03
    assert ar_lag_best_mse() == pytest.approx(0.19)
    others = torch.cat([coef[:1], coef[2:L + 1]]).abs()    # every token except position 1 (lag L)
    assert float(coef[1].abs()) > 20 * float(others.max())


def test_ar_task_is_seeded():
    a, b, c = ar_lag_data(3, seed=1, n=100), ar_lag_data(3, seed=1, n=100), ar_lag_data(3, seed=2, n=100)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.X_train, c.X_train)


def test_positional_channels():
    P = positional_channels(70)
    assert P.shape == (70, 16)
    t = 37
    for k in range(8):
        angle = 2 * math.pi * t / (32 * 2**k)
        assert P[t, 2 * k] == pytest.approx(math.sin(angle)) and P[t, 2 * k + 1] == pytest.approx(math.cos(angle))


def test_clipped_tokens_are_bounded():
    data = ar_lag_data(L=8, seed=0, n=300, clip_tokens=True)
    assert float(all_inputs(data).norm(dim=-1).max()) <= 1 + 1e-12
    unclipped = ar_lag_data(L=8, seed=0, n=300)
    assert float(all_inputs(unclipped).norm(dim=-1).max()) > 1


@pytest.mark.parametrize("name,length", [("co2", 2284), ("sunspots", 309)])
def test_recorded_series_are_standardised_and_windowed(name, length):
    x = recorded_series(name)
    assert x.shape == (length,) and torch.isfinite(x).all()
    assert abs(float(x.mean())) < 1e-12 and abs(float(x.std(correction=0)) - 1) < 1e-12
    data = series_data(name, L=11, seed=0)
    assert data.X_train.shape[0] + data.X_val.shape[0] == length - 12
    X = all_inputs(data)
    assert X.shape[1:] == (12, TOKEN_DIM) and torch.isfinite(X).all()


def test_window_dataset_refuses_more_windows_than_the_series_holds():
    with pytest.raises(ValueError, match="n = 400"):
        window_dataset(torch.zeros(300, dtype=torch.float64), T=5, n=400, seed=0)
    with pytest.raises(ValueError, match="series = 'nile'"):
        recorded_series("nile")


def test_configs_build_the_data():
    config = parse_config({"model": "indrnn", "data": {"name": "ar-lag", "L": 3, "n": 50}})
    data = build_data(config.data, seed=0)
    assert data.X_train.shape == (40, 4, TOKEN_DIM)
    config = parse_config({"data": "series:sunspots"})
    assert config.data.recording == "sunspots"
    data = build_data(parse_config({"data": {"name": "series", "recording": "sunspots", "L": 4, "n": 100}}).data, 0)
    assert data.X_train.shape == (80, 5, TOKEN_DIM)
    with pytest.raises(ConfigError, match="data.recording"):
        parse_config({"data": "series:moon"})
    with pytest.raises(ConfigError, match="data.L"):
        parse_config({"data": {"name": "ar-lag", "L": 0}})
