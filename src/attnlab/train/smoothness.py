"""Smoothness constants of a model along training, as a Recorder (issue 14, item 3).

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

from attnlab.models import indrnn, kernel_transformer
from attnlab.models.base import Model, Params

OUTPUT_GRADIENT_NORMS = {"kernel-transformer": kernel_transformer.output_gradient_norms,
                         "indrnn": indrnn.output_gradient_norms}
OUTPUT_GRADIENT_BOUNDS = {"kernel-transformer": kernel_transformer.output_gradient_bound}


class SmoothnessRecorder:
    """The largest per-sample output-gradient norm on X and, where the model has one, its bound."""

    def __init__(self, model: Model, X: torch.Tensor, every: int = 1, field: str = "diagnostics.smoothness_every"):
        if model.name not in OUTPUT_GRADIENT_NORMS:
            raise ValueError(f"{field}: model {model.name!r} has no per-sample gradient norm; "
                             f"allowed for {', '.join(OUTPUT_GRADIENT_NORMS)}")
        self.model, self.X, self.every = model, X, every
        self.token_norm = float(X.norm(dim=-1).max()) if X.numel() else 0.0

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        norms = OUTPUT_GRADIENT_NORMS[self.model.name](self.model, params, self.X)
        row = {"output_grad_norm": float(norms.max()) if norms.numel() else math.nan}
        bound = OUTPUT_GRADIENT_BOUNDS.get(self.model.name)
        if bound is not None:
            row["output_grad_bound"] = bound(self.model, params, self.token_norm)
            row["output_grad_ratio"] = (row["output_grad_norm"] / row["output_grad_bound"]
                                        if row["output_grad_bound"] > 0 else math.nan)
        return row

    def summarise(self, curves: pd.DataFrame) -> dict:
        """max.output_grad_*: the largest value of each column along the run."""
        return {"max": {c: float(curves[c].max()) for c in curves if c.startswith("output_grad_")}}
