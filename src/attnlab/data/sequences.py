"""Next-value prediction from windows of a scalar series (spec recurrent-baseline.md, sections 2 and 4).

A window of T consecutive values x[s : s+T] is the input and x[s+T] the target: T = L + 1 by
default, or a fixed T >= L for every lag (the lag then moves the informative token inside the
window). Each token is the value followed by 8 fixed sin/cos pairs of its position t = 0..T-1 in
the window, sin and cos of 2 pi t / (32 * 2^k) for k = 0..7, so d = 17. Targets are standardised
(z-score) unless asked otherwise.

Two series: the synthetic autoregression x_t = a x_{t-L} + e_t (only the token at lag L is
informative), and recorded series shipped with statsmodels (atmospheric CO2, yearly sunspots).
"""

from __future__ import annotations

import math

import torch

from attnlab.data.dataset import Dataset, clip_token_norms, split
from attnlab.seeding import generator

POSITIONAL_PAIRS = 8
TOKEN_DIM = 1 + 2 * POSITIONAL_PAIRS
RECORDED_SERIES = ("co2", "sunspots")


def positional_channels(T: int, pairs: int = POSITIONAL_PAIRS) -> torch.Tensor:
    """(T, 2 * pairs) float64: [sin, cos](2 pi t / (32 * 2^k)) for k = 0..pairs-1, interleaved."""
    t = torch.arange(T, dtype=torch.float64).unsqueeze(1)
    angles = 2 * math.pi * t / (32.0 * 2.0 ** torch.arange(pairs, dtype=torch.float64))
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(T, 2 * pairs)


def ar_lag_series(length: int, L: int, seed: int, coefficient: float = 0.9, noise_variance: float = 0.1,
                  burn_in: int = 800) -> torch.Tensor:
    """x_t = coefficient * x_{t-L} + e_t, e_t ~ N(0, noise_variance), x_0..x_{L-1} ~ N(0, 1);
    the first `burn_in` values are dropped. Returns (length,) float64.

    The recurrence only couples values L apart, so it runs as L interleaved scalar AR(1) chains,
    one block of L values per step."""
    if L <= 0:
        raise ValueError(f"L = {L}: the lag must be a positive integer")
    if length <= 0:
        raise ValueError(f"length = {length}: the series length must be a positive integer")
    gen = generator(seed, "ar-series")
    total = burn_in + length
    blocks = -(-total // L)
    x = torch.empty(blocks, L, dtype=torch.float64)
    x[0] = torch.randn(L, generator=gen, dtype=torch.float64)
    noise = math.sqrt(noise_variance) * torch.randn(blocks - 1, L, generator=gen, dtype=torch.float64)
    for k in range(1, blocks):
        x[k] = coefficient * x[k - 1] + noise[k - 1]
    return x.reshape(-1)[burn_in:total]


def ar_lag_best_mse(coefficient: float = 0.9, noise_variance: float = 0.1) -> float:
    """The best achievable standardised MSE: noise variance over the stationary variance, 1 - a^2
    (0.19 for a = 0.9, independent of the noise variance)."""
    stationary = noise_variance / (1 - coefficient**2)
    return noise_variance / stationary


def window_dataset(series: torch.Tensor, T: int, n: int | None, seed: int, val_fraction: float = 0.2,
                   clip_tokens: bool = False, standardise_targets: bool = True) -> Dataset:
    """n windows with consecutive starts s = 0..n-1: inputs (n, T, 17), targets x[s+T] (z-scored
    over the n windows when standardise_targets).

    n = None takes every window the series holds (len(series) - T)."""
    available = series.shape[0] - T
    n = available if n is None else n
    if available < 2 or n > available:
        raise ValueError(f"n = {n}: a series of {series.shape[0]} values holds only {max(available, 0)} "
                         f"windows of T = {T} tokens plus a target")
    starts = torch.arange(n).unsqueeze(1) + torch.arange(T)                  # (n, T)
    values = series[starts].unsqueeze(-1)                                      # (n, T, 1)
    positions = positional_channels(T).expand(n, T, 2 * POSITIONAL_PAIRS)
    X = torch.cat([values, positions], dim=-1)
    if clip_tokens:
        X = clip_token_norms(X)
    y = series[T:T + n]
    if standardise_targets:
        y = (y - y.mean()) / y.std(correction=0)
    return split(X, y, val_fraction, seed)


def ar_lag_data(L: int, seed: int, n: int = 5000, coefficient: float = 0.9, noise_variance: float = 0.1,
                burn_in: int = 800, val_fraction: float = 0.2, clip_tokens: bool = False,
                T: int | None = None, standardise_targets: bool = True) -> Dataset:
    """The lag-L task: n windows of T tokens of the AR series (T = None: L + 1), split
    train/validation. A fixed T must hold the token at lag L (L <= T)."""
    T = L + 1 if T is None else T
    if L > T:
        raise ValueError(f"T = {T}: a window must hold the token at lag L = {L} (need L <= T)")
    series = ar_lag_series(n + T, L, seed, coefficient, noise_variance, burn_in)
    return window_dataset(series, T, n, seed, val_fraction, clip_tokens, standardise_targets)


def recorded_series(name: str) -> torch.Tensor:
    """A recorded series shipped with statsmodels, standardised: (length,) float64.

    co2: weekly Mauna Loa CO2 1958-2001 (2284 values; missing weeks linearly interpolated);
    sunspots: yearly sunspot activity 1700-2008 (309 values)."""
    try:
        from statsmodels import datasets
    except ImportError as error:  # pragma: no cover - statsmodels is an optional dependency
        raise RuntimeError("recorded series need statsmodels (pip install attnlab[data])") from error
    if name == "co2":
        values = datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both").to_numpy()
    elif name == "sunspots":
        values = datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    else:
        raise ValueError(f"series = {name!r}: allowed are {', '.join(RECORDED_SERIES)}")
    x = torch.tensor(values, dtype=torch.float64)
    return (x - x.mean()) / x.std(correction=0)


def series_data(name: str, L: int, seed: int, n: int | None = None, val_fraction: float = 0.2,
                clip_tokens: bool = False) -> Dataset:
    """Windows of T = L + 1 tokens over the recorded series `name` (n = None: all windows)."""
    if L <= 0:
        raise ValueError(f"L = {L}: the lag must be a positive integer")
    return window_dataset(recorded_series(name), L + 1, n, seed, val_fraction, clip_tokens)
