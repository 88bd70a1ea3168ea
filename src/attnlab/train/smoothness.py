"""Smoothness constants of a model along training, as a recorder of one run (issue 14, item 3).

Every `every` steps, on the training inputs X (n, T, d):

    output_grad_norm    max_j ||grad_theta f(X_j)||, the per-sample output-gradient norm
    output_grad_bound   the kernel-regime Transformer's analytic bound on it, which depends on c, U
                        and the largest token norm only, not on T (kernel_transformer.output_gradient_bound)
    output_grad_ratio   output_grad_norm / output_grad_bound (<= 1 when the bound holds)

The largest loss-gradient norm is the trainer's own `grad_norm` column.
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from attnlab.models.base import MODELS, Model, Params
from attnlab.recorder import RunRecorder


class SmoothnessRecorder(RunRecorder):
    """The largest per-sample output-gradient norm on X and, where the model has one, its bound
    (the model's `output_gradient_norms` and `smoothness_bound`)."""

    def __init__(self, model: Model, X: torch.Tensor, every: int = 1, field: str = "diagnostics.record.smoothness"):
        if not model.has_output_gradient_norms:
            allowed = [name for name, cls in MODELS.items() if cls.has_output_gradient_norms]
            raise ValueError(f"{field}: model {model.name!r} has no per-sample gradient norm; "
                             f"allowed for {', '.join(allowed)}")
        self.model, self.X, self.every = model, X, every
        self.token_norm = float(X.norm(dim=-1).max()) if X.numel() else 0.0

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        norms = self.model.output_gradient_norms(params, self.X)
        row = {"output_grad_norm": float(norms.max()) if norms.numel() else math.nan}
        bound = self.model.smoothness_bound(params, self.token_norm)
        if bound is not None:
            row["output_grad_bound"] = bound
            row["output_grad_ratio"] = (row["output_grad_norm"] / row["output_grad_bound"]
                                        if row["output_grad_bound"] > 0 else math.nan)
        return row

    def summarise_run(self, curves: pd.DataFrame) -> dict:
        """max.output_grad_*: the largest value of each column along the run."""
        return {"max": {c: float(curves[c].max()) for c in curves if c.startswith("output_grad_")}}
