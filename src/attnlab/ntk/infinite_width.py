"""Infinite-width NTKs estimated by Monte Carlo, with a standard error for every entry.

- `transformer_mc_kernel`: the NTK of the multi-head kernel-regime Transformer as m -> infinity,

      K(X, X') = E_{U ~ N(0, I_d), W ~ N(0, I_{d x d})} [ sigma(s) sigma(s')
                 + sigma'(s) sigma'(s') ( <a, a'> + <M U, M' U> <x_T, x'_T> ) ],

  (c^2 = 1), averaged over independent (U, W) draws, chunked over draws. The empirical NTK at the
  paired initialisation is exactly this average over its m/2 distinct heads.
- `mc_average_ntk`: the average of empirical NTKs over initialisation seeds, for any model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from attnlab.models.activations import activation
from attnlab.models.base import Model
from attnlab.models.kernel_transformer import covariance_times_readout, head_features
from attnlab.ntk.empirical import empirical
from attnlab.ntk.target import Params
from attnlab.numerics.precision import exact_matmul
from attnlab.seeding import generator


@dataclass
class MonteCarloKernel:
    """mean (N1, N2), stderr (N1, N2) = sample sd / sqrt(draws) per entry, the number of draws, and
    the mean per parameter block where known."""

    mean: torch.Tensor
    stderr: torch.Tensor
    draws: int
    blocks: dict[str, torch.Tensor] = field(default_factory=dict)


class _Moments:
    """Running sum and sum of squares of (N1, N2) samples, shifted by the first sample for accuracy."""

    def __init__(self) -> None:
        self.shift = None
        self.count, self.sum, self.sum_sq = 0, 0.0, 0.0

    def add(self, samples: torch.Tensor) -> None:
        """samples (k, N1, N2)."""
        if self.shift is None:
            self.shift = samples[0].clone()
        centred = samples - self.shift
        self.count += samples.shape[0]
        self.sum = self.sum + centred.sum(0)
        self.sum_sq = self.sum_sq + (centred**2).sum(0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"draws = {self.count}: a standard error needs at least 2 draws")
        mean = self.sum / self.count
        var = (self.sum_sq - self.count * mean**2).clamp(min=0) / (self.count - 1)
        return mean + self.shift, (var / self.count).sqrt()


def transformer_mc_kernel(X1: torch.Tensor, X2: torch.Tensor | None = None, draws: int = 4096,
                          activation_name: str = "tanh", seed: int = 0, chunk: int | None = None,
                          max_memory: float = 512 * 2**20) -> MonteCarloKernel:
    """Monte-Carlo infinite-width NTK of the kernel-regime Transformer on X1 (N1, T, d), X2 (N2, T, d).

    Draws (U, W) come from generator(seed, "mc-kernel") in float64 on the CPU stream and are moved to
    X1's device; `chunk` draws at a time (default: as many as `max_memory` allows for the (chunk, N1,
    N2) per-draw kernels). Blocks: "c" sigma sigma', "U" sigma' sigma' <a, a'>, "W" the rest."""
    if draws < 2:
        raise ValueError(f"draws = {draws}: need at least 2 draws for a standard error")
    X1 = X1.to(torch.float64)
    X2 = X1 if X2 is None else X2.to(torch.float64)
    sigma, sigma_prime = activation(activation_name)
    n1, n2, d = X1.shape[0], X2.shape[0], X1.shape[-1]
    chunk = chunk or int(max(1, min(draws, max_memory // (6 * n1 * n2 * 8))))
    xx = X1[:, -1] @ X2[:, -1].T
    moments = {k: _Moments() for k in ("total", "W", "U", "c")}
    with exact_matmul():
        for W_block, U_block in _draw_blocks(draws, d, generator(seed, "mc-kernel")):
            for start in range(0, W_block.shape[0], chunk):
                W = W_block[start:start + chunk].to(X1.device)
                U = U_block[start:start + chunk].to(X1.device)
                h1, h2 = head_features(W, U, X1), head_features(W, U, X2)
                g1, g2 = covariance_times_readout(X1, h1), covariance_times_readout(X2, h2)
                dd = torch.einsum("ik,jk->kij", sigma_prime(h1.s), sigma_prime(h2.s))
                parts = {"c": torch.einsum("ik,jk->kij", sigma(h1.s), sigma(h2.s)),
                         "U": dd * torch.einsum("ikd,jkd->kij", h1.a, h2.a),
                         "W": dd * torch.einsum("ikd,jkd->kij", g1, g2) * xx}
                parts["total"] = parts["c"] + parts["U"] + parts["W"]
                for name, samples in parts.items():
                    moments[name].add(samples)
    mean, stderr = moments["total"].result()
    return MonteCarloKernel(mean, stderr, draws, {k: moments[k].result()[0] for k in ("W", "U", "c")})


_DRAW_BLOCK = 64  # draws generated per call: the random numbers do not depend on `chunk`


def _draw_blocks(draws: int, d: int, gen: torch.Generator):
    """(W (k, d, d), U (k, d)) float64 CPU draws in blocks of _DRAW_BLOCK, the same for any chunk."""
    for start in range(0, draws, _DRAW_BLOCK):
        k = min(_DRAW_BLOCK, draws - start)
        yield (torch.randn(k, d, d, generator=gen, dtype=torch.float64),
               torch.randn(k, d, generator=gen, dtype=torch.float64))


def mc_average_ntk(model: Any, X: torch.Tensor, X2: torch.Tensor | None = None,
                   seeds: Iterable[int] = range(8), init: Callable[[int], Params] | None = None,
                   method: str = "auto", dtype: torch.dtype | None = torch.float64,
                   max_memory: float | None = None) -> MonteCarloKernel:
    """Average of the empirical NTK K(X, X2) over initialisations, one per seed, with per-entry
    standard errors. `init(seed) -> params` defaults to `model.init(seed, dtype)` for attnlab models
    (required for other models)."""
    if init is None:
        if not isinstance(model, Model):
            raise ValueError(f"init = None: a {type(model).__name__} needs init(seed) -> params")
        init = lambda seed: model.init(seed, dtype=dtype or torch.float64)  # noqa: E731
    moments: dict[str, _Moments] = {}
    for seed in seeds:
        K = empirical(model, X, X2, params=init(seed), method=method, dtype=dtype, max_memory=max_memory)
        for name, value in {"total": K.total, **K.blocks}.items():
            moments.setdefault(name, _Moments()).add(value.unsqueeze(0))
    if "total" not in moments:
        raise ValueError("seeds is empty: give at least 2 seeds")
    mean, stderr = moments["total"].result()
    blocks = {k: m.result()[0] for k, m in moments.items() if k != "total"}
    return MonteCarloKernel(mean, stderr, moments["total"].count, blocks)
