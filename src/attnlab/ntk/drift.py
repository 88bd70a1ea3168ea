"""The NTK-drift recorder on the empirical kernel of any model (attnlab.ntk.empirical).

On a fixed probe set X_p it records, every `every` steps, lambda_min(K_t) and the relative drift
||K_t - K_0||_F / ||K_0||_F, where K_0 is the kernel at `params0` (or at the first call). Small
drift is the kernel regime of both theories; growing drift is the sign of leaving it. The formula
lives in attnlab.train.diagnostics.NTKRecorder; this class only chooses the kernel.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.ntk.empirical import empirical
from attnlab.ntk.target import Params
from attnlab.train.diagnostics import NTKRecorder


class NTKDriftRecorder(NTKRecorder):
    """NTKRecorder (columns `ntk_lambda_min`, `ntk_drift`) on K(X_probe, X_probe) from `empirical`."""

    def __init__(self, model: Any, X_probe: torch.Tensor, every: int = 100, params0: Params | None = None,
                 method: str = "auto", dtype: torch.dtype | None = torch.float64,
                 max_memory: float | None = None):
        """X_probe (N, T, d): the fixed probe inputs; params0: reference parameters (defaults to the
        parameters of the first call); method, dtype, max_memory: as for `empirical`."""
        self.method, self.dtype, self.max_memory = method, dtype, max_memory
        self.X_probe = X_probe
        super().__init__(model, X_probe, params0, every, kernel=self.empirical_kernel)

    def empirical_kernel(self, params: Params) -> tuple[torch.Tensor, dict]:
        """(K (N, N), {}) at `params`: the total kernel only, no blocks."""
        return empirical(self.model, self.X, params=params, method=self.method, dtype=self.dtype,
                         blocks=False, max_memory=self.max_memory).total, {}
