"""The lag-L task's context policy (matched T = L + 1, or a fixed T) and target standardisation."""

from __future__ import annotations

import pytest
import torch

from attnlab.config import ConfigError, parse_config
from attnlab.data import build_data
from attnlab.data.sequences import TOKEN_DIM, ar_lag_data, ar_lag_series


def all_of(data):
    return torch.cat([data.X_train, data.X_val]), torch.cat([data.y_train, data.y_val])


def test_fixed_context_keeps_T_and_moves_the_informative_token():
    n, T = 300, 32
    for L in (4, 20, 32):
        X, y = all_of(ar_lag_data(L, seed=3, n=n, T=T, val_fraction=0.0, standardise_targets=False))
        assert X.shape == (n, T, TOKEN_DIM)
        series = ar_lag_series(n + T, L, seed=3)
        windows = torch.stack([series[s:s + T + 1] for s in range(n)])   # inputs, then the target
        order, expected = torch.argsort(y), torch.argsort(windows[:, -1])   # the split shuffles
        torch.testing.assert_close(torch.cat([X[:, :, 0], y[:, None]], 1)[order], windows[expected])
        lagged = X[:, T - L, 0]                     # x[s + T - L]: the token L steps before the target
        residual = y - 0.9 * lagged
        assert abs(float(residual.var()) - 0.1) < 0.03


def test_matched_context_is_the_default_and_unchanged():
    a = ar_lag_data(6, seed=1, n=200)
    b = ar_lag_data(6, seed=1, n=200, T=7)
    assert a.X_train.shape[1] == 7 and torch.equal(a.X_train, b.X_train) and torch.equal(a.y_val, b.y_val)


def test_targets_unstandardised_on_request():
    X, y = all_of(ar_lag_data(4, seed=0, n=500, standardise_targets=False, coefficient=0.999))
    _, z = all_of(ar_lag_data(4, seed=0, n=500, coefficient=0.999))
    assert float(y.std()) > 2.0 and abs(float(z.std(correction=0)) - 1) < 1e-12
    torch.testing.assert_close(z, (y - y.mean()) / y.std(correction=0))


def test_config_context_fills_the_window_and_reaches_the_data():
    matched = parse_config({"model": "indrnn", "data": {"name": "ar-lag", "L": 5, "n": 50}})
    assert matched.data.context == "matched" and matched.data.T is None and matched.data.window == 6
    fixed = parse_config({"model": "indrnn", "data": {"name": "ar-lag", "L": 5, "n": 50, "context": "fixed"}})
    assert fixed.data.T == 128 and fixed.data.window == 128
    assert build_data(fixed.data, 0).X_train.shape[1:] == (128, TOKEN_DIM)
    raw = {"name": "ar-lag", "L": 5, "n": 50, "context": "fixed", "T": 16, "standardise_targets": False,
           "coefficient": 0.999}
    data = build_data(parse_config({"model": "indrnn", "data": raw}).data, 0)
    assert data.X_train.shape[1] == 16 and float(torch.cat([data.y_train, data.y_val]).std()) > 1.5


@pytest.mark.parametrize("data, message", [
    ({"context": "fixed", "T": 8, "L": 9}, r"data\.T = 8: must be >= data\.L = 9"),
    ({"T": 8}, r"data\.T = 8: only with context 'fixed'"),
    ({"context": "window"}, r"data\.context = 'window'.*'matched'.*'fixed'"),
    ({"standardise_targets": "maybe"}, r"data\.standardise_targets = 'maybe'"),
])
def test_bad_context_settings_are_clear_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"model": "indrnn", "data": {"name": "ar-lag", **data}})
    with pytest.raises(ValueError, match="need L <= T"):
        ar_lag_data(9, seed=0, n=50, T=8)
