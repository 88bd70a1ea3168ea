"""Per-step diagnostics of training, as recorders of one run (spec shallow-encoder.md, section 3).

Each recorder is called with (step, params) on its own schedule and returns extra curve columns:

    FeatureRecorder      alpha (smallest singular value of the N x d_m read-out features relu(h)),
                         attention logit std, mean row entropy, max and mean |S_ij - 1/T|, train accuracy
                         (multi-output models, one-hot targets)
    WeightChangeRecorder rel_change_<block> = ||W_t - W_prev||_F / ||W_prev||_F (W_prev: the iterate
                         at this recorder's previous call, the previous epoch when every = 1) and
                         rel_dist_<block> = ||W_t - W_0||_F / ||W_0||_F, also over all blocks ("all")

The NTK recorder is attnlab.ntk.drift.NTKRecorder. attnlab.train.recorders names them ("attention",
"weight_change", "ntk") and builds them from a run's DiagnosticsConfig.
"""

from __future__ import annotations

import math

import torch

from attnlab.models.base import Model, Params
from attnlab.numerics.statistics import attention_statistics, frobenius, smallest_singular_value
from attnlab.recorder import RunRecorder, switch_off


class FeatureRecorder(RunRecorder):
    """Read-out features and attention statistics of the training inputs (models with forward_state)."""

    def __init__(self, model: Model, X: torch.Tensor, y: torch.Tensor, every: int = 1,
                 field: str = "diagnostics.record.attention"):
        if not model.has_forward_state:
            raise ValueError(f"{field}: model {model.name!r} exposes no features/attention "
                             f"(forward_state); {switch_off(field)}")
        self.model, self.X, self.y, self.every = model, X, y, every

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        with torch.no_grad():
            s = self.model.forward_state(params, self.X)
            row = {"alpha": smallest_singular_value(s.r), **attention_statistics(s.L, s.S)}
            if self.y.dim() == 2:
                row["train_accuracy"] = float((s.f.argmax(1) == self.y.argmax(1)).double().mean())
        return row


class WeightChangeRecorder(RunRecorder):
    """Relative change since the previous call and relative distance from initialisation, per block."""

    def __init__(self, params0: Params, every: int = 1):
        self.params0 = {k: v.clone() for k, v in params0.items()}
        self.previous: Params | None = None
        self.every = every

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        row, prev = {}, self.previous
        sq = {"change": 0.0, "prev": 0.0, "dist": 0.0, "init": 0.0}
        for name, w in params.items():
            dist, init = frobenius(w - self.params0[name]), frobenius(self.params0[name])
            row[f"rel_dist_{name}"] = dist / init if init > 0 else math.nan
            sq["dist"] += dist**2
            sq["init"] += init**2
            if prev is None:
                row[f"rel_change_{name}"] = math.nan
                continue
            change, size = frobenius(w - prev[name]), frobenius(prev[name])
            row[f"rel_change_{name}"] = change / size if size > 0 else math.nan
            sq["change"] += change**2
            sq["prev"] += size**2
        row["rel_dist_all"] = math.sqrt(sq["dist"] / sq["init"]) if sq["init"] > 0 else math.nan
        row["rel_change_all"] = (math.sqrt(sq["change"] / sq["prev"]) if prev is not None and sq["prev"] > 0
                                 else math.nan)
        self.previous = {k: v.clone() for k, v in params.items()}
        return row
