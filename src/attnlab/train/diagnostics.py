"""Per-step diagnostics of training, as Recorders for the Trainer (spec shallow-encoder.md, section 3).

Each recorder is called with (step, params) on its own schedule and returns extra curve columns:

    FeatureRecorder      alpha (smallest singular value of the N x d_m read-out features relu(h)),
                         attention logit std, mean row entropy, max and mean |S_ij - 1/T|, train accuracy
                         (multi-output models, one-hot targets)
    WeightChangeRecorder rel_change_<block> = ||W_t - W_prev||_F / ||W_prev||_F (W_prev: the iterate
                         at this recorder's previous call, the previous epoch when every = 1) and
                         rel_dist_<block> = ||W_t - W_0||_F / ||W_0||_F, also over all blocks ("all")
    NTKRecorder          ntk_lambda_min, ntk_drift = ||K_t - K_0||_F / ||K_0||_F, and the trace of
                         each block's kernel, from the model's structured `ntk_blocks`

`build_recorders` makes them from a run's DiagnosticsConfig.
"""

from __future__ import annotations

import math

import torch

from attnlab.config import DiagnosticsConfig
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model, Params
from attnlab.train.smoothness import SmoothnessRecorder


def _fro(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def attention_statistics(L: torch.Tensor, S: torch.Tensor) -> dict[str, float]:
    """Logit std, mean row entropy, and the largest and mean |S_ij - 1/T| of logits L and attention
    S (B, T, T). The mean deviation follows the typical logit; the largest follows the logits' tail."""
    T = S.shape[-1]
    entropy = -(S * torch.log(S.clamp_min(torch.finfo(S.dtype).tiny))).sum(-1)
    deviation = (S - 1.0 / T).abs()
    return {"logit_std": float(L.std()),
            "attention_entropy": float(entropy.mean()),
            "attention_max_dev": float(deviation.max()),
            "attention_mean_dev": float(deviation.mean())}


def smallest_singular_value(F: torch.Tensor) -> float:
    """Smallest singular value of F (N, p) in float64 (0 when N > p); nan when F is not finite."""
    if not bool(torch.isfinite(F).all()):
        return math.nan
    return float(torch.linalg.svdvals(F.double()).min()) if F.shape[0] <= F.shape[1] else 0.0


class FeatureRecorder:
    """Read-out features and attention statistics of the training inputs (models with forward_state)."""

    def __init__(self, model: Model, X: torch.Tensor, y: torch.Tensor, every: int = 1):
        if not hasattr(model, "forward_state"):
            raise ValueError(f"diagnostics.every: model {model.name!r} exposes no features/attention "
                             "(forward_state); set diagnostics.every: null")
        self.model, self.X, self.y, self.every = model, X, y, every

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        with torch.no_grad():
            s = self.model.forward_state(params, self.X)
            row = {"alpha": smallest_singular_value(s.r), **attention_statistics(s.L, s.S)}
            if self.y.dim() == 2:
                row["train_accuracy"] = float((s.f.argmax(1) == self.y.argmax(1)).double().mean())
        return row


class WeightChangeRecorder:
    """Relative change since the previous call and relative distance from initialisation, per block."""

    def __init__(self, params0: Params, every: int = 1):
        self.params0 = {k: v.clone() for k, v in params0.items()}
        self.previous: Params | None = None
        self.every = every

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        row, prev = {}, self.previous
        sq = {"change": 0.0, "prev": 0.0, "dist": 0.0, "init": 0.0}
        for name, w in params.items():
            dist, init = _fro(w - self.params0[name]), _fro(self.params0[name])
            row[f"rel_dist_{name}"] = dist / init if init > 0 else math.nan
            sq["dist"] += dist**2
            sq["init"] += init**2
            if prev is None:
                row[f"rel_change_{name}"] = math.nan
                continue
            change, size = _fro(w - prev[name]), _fro(prev[name])
            row[f"rel_change_{name}"] = change / size if size > 0 else math.nan
            sq["change"] += change**2
            sq["prev"] += size**2
        row["rel_dist_all"] = math.sqrt(sq["dist"] / sq["init"]) if sq["init"] > 0 else math.nan
        row["rel_change_all"] = (math.sqrt(sq["change"] / sq["prev"]) if prev is not None and sq["prev"] > 0
                                 else math.nan)
        self.previous = {k: v.clone() for k, v in params.items()}
        return row


class NTKRecorder:
    """Smallest eigenvalue of the empirical NTK on X and its drift from the NTK at params0."""

    def __init__(self, model: Model, X: torch.Tensor, params0: Params, every: int = 10):
        if not hasattr(model, "ntk_blocks"):
            raise ValueError(f"diagnostics.ntk_every: model {model.name!r} has no structured NTK "
                             "(ntk_blocks); set diagnostics.ntk_every: null")
        self.model, self.X, self.every = model, X, every
        self.K0 = self.kernel(params0)[0]

    def kernel(self, params: Params) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(K, blocks) on X in float64 (TF32 matmuls disabled)."""
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            blocks = self.model.ntk_blocks(params, self.X)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        blocks = {k: v.double() for k, v in blocks.items()}
        return sum(blocks.values()), blocks

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        K, blocks = self.kernel(params)
        if not bool(torch.isfinite(K).all()):
            return {"ntk_lambda_min": math.nan, "ntk_drift": math.nan}
        row = {"ntk_lambda_min": float(torch.linalg.eigvalsh(K).min()),
               "ntk_drift": _fro(K - self.K0) / _fro(self.K0)}
        row.update({f"ntk_trace_{name}": float(b.trace()) for name, b in blocks.items()})
        return row


def build_recorders(config: DiagnosticsConfig, model: Model, params0: Params, data: Dataset) -> list:
    """The recorders a DiagnosticsConfig asks for (none when every, ntk_every and smoothness_every are null)."""
    recorders: list = []
    if config.every is not None:
        recorders.append(FeatureRecorder(model, data.X_train, data.y_train, every=config.every))
        recorders.append(WeightChangeRecorder(params0, every=config.every))
    if config.ntk_every is not None:
        X = data.X_train if config.ntk_samples is None else data.X_train[:config.ntk_samples]
        recorders.append(NTKRecorder(model, X, params0, every=config.ntk_every))
    if config.smoothness_every is not None:
        recorders.append(SmoothnessRecorder(model, data.X_train, every=config.smoothness_every))
    return recorders
