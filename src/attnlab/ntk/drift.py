"""A trainer recorder of how far the NTK moves from its value at initialisation.

On a fixed probe set X_p it records, every `every` steps, lambda_min(K_t) and the relative drift
||K_t - K_0||_F / ||K_0||_F, where K_0 is the kernel at the first recorded step (or at `params0`).
Small drift is the kernel regime of both theories; growing drift is the sign of leaving it.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.ntk.empirical import empirical
from attnlab.ntk.spectrum import smallest_eigenvalue
from attnlab.ntk.target import Params


class NTKDriftRecorder:
    """Recorder (attnlab.train.trainer.Recorder) adding columns `ntk_lambda_min` and `ntk_drift`."""

    def __init__(self, model: Any, X_probe: torch.Tensor, every: int = 100, params0: Params | None = None,
                 method: str = "auto", dtype: torch.dtype | None = torch.float64,
                 max_memory: float | None = None):
        """X_probe (N, T, d): the fixed probe inputs; params0: reference parameters (defaults to the
        parameters of the first call)."""
        if every <= 0:
            raise ValueError(f"every = {every}: must be a positive number of steps")
        self.model, self.X_probe, self.every = model, X_probe, every
        self.method, self.dtype, self.max_memory = method, dtype, max_memory
        self.K0 = None if params0 is None else self.kernel(params0)

    def kernel(self, params: Params) -> torch.Tensor:
        """K(X_probe, X_probe) at `params`."""
        return empirical(self.model, self.X_probe, params=params, method=self.method, dtype=self.dtype,
                         blocks=False, max_memory=self.max_memory).total

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        K = self.kernel(params)
        if self.K0 is None:
            self.K0 = K
        drift = float(torch.linalg.matrix_norm(K - self.K0) / torch.linalg.matrix_norm(self.K0))
        return {"ntk_lambda_min": smallest_eigenvalue(K), "ntk_drift": drift}
