"""The NTK along training, as recorders (attnlab.recorder): one formula, two kernels.

On fixed inputs X (N, T, d), every `every` steps: ntk_lambda_min = lambda_min(K_t), ntk_drift =
||K_t - K_0||_F / ||K_0||_F (K_0: the kernel at `params0`, or at the first call) and, where the
kernel comes in blocks, ntk_trace_<block>. Small drift is the kernel regime of both theories;
growing drift is the sign of leaving it.

    NTKRecorder       the model's structured kernel (`ntk_blocks`), or any `kernel` function
    NTKDriftRecorder  the empirical kernel of any model (attnlab.ntk.empirical)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from attnlab.models.base import Model
from attnlab.ntk.empirical import empirical
from attnlab.ntk.target import Params
from attnlab.numerics.precision import exact_matmul
from attnlab.numerics.statistics import frobenius
from attnlab.recorder import RunRecorder, switch_off

Kernel = Callable[[Params], tuple[torch.Tensor | None, dict[str, torch.Tensor]]]


class NTKRecorder(RunRecorder):
    """ntk_lambda_min, ntk_drift and ntk_trace_<block> of the NTK on X (N, T, d).

    `kernel(params) -> (K (N, N) or None, {block: K_block})` (None: K is the sum of the blocks); by
    default the model's structured `ntk_blocks`. Kernels are computed without TF32 (exact_matmul)
    and compared in float64."""

    def __init__(self, model: Model, X: torch.Tensor, params0: Params | None = None, every: int = 10,
                 kernel: Kernel | None = None, field: str = "diagnostics.record.ntk"):
        if every <= 0:
            raise ValueError(f"every = {every}: must be a positive number of steps")
        if kernel is None and not model.has_structured_ntk:
            raise ValueError(f"{field}: model {model.name!r} has no structured NTK (ntk_blocks); "
                             f"{switch_off(field)}")
        self.model, self.X, self.every = model, X, every
        self._kernel = kernel or self.structured_kernel
        self.K0 = None if params0 is None else self.kernel(params0)[0]

    def structured_kernel(self, params: Params) -> tuple[None, dict[str, torch.Tensor]]:
        """(None, blocks) on X from the model's `ntk_blocks`."""
        return None, self.model.ntk_blocks(params, self.X)

    def kernel(self, params: Params) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(K (N, N), {block: K_block}) at `params`, in float64."""
        with exact_matmul():
            K, blocks = self._kernel(params)
        blocks = {k: v.double() for k, v in blocks.items()}
        return (sum(blocks.values()) if K is None else K.double()), blocks

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        K, blocks = self.kernel(params)
        if self.K0 is None:
            self.K0 = K
        if not bool(torch.isfinite(K).all()):
            return {"ntk_lambda_min": math.nan, "ntk_drift": math.nan}
        row = {"ntk_lambda_min": float(torch.linalg.eigvalsh(K).min()),
               "ntk_drift": frobenius(K - self.K0) / frobenius(self.K0)}
        row.update({f"ntk_trace_{name}": float(b.trace()) for name, b in blocks.items()})
        return row


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
