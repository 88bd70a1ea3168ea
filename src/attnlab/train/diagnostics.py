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

attnlab.train.recorders names them ("attention", "weight_change", "ntk") and builds them from a run's
DiagnosticsConfig.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from attnlab.models.base import Model, Params
from attnlab.train.precision import exact_matmul


def switch_off(field: str) -> str:
    """How to turn off the recorder a config field asks for, for error messages."""
    return f"remove {field}" if ".record." in field else f"set {field}: null"


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

    def __init__(self, model: Model, X: torch.Tensor, y: torch.Tensor, every: int = 1,
                 field: str = "diagnostics.every"):
        if not hasattr(model, "forward_state"):
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
    """ntk_lambda_min and ntk_drift = ||K_t - K_0||_F / ||K_0||_F of the empirical NTK on probe inputs
    X (N, T, d), and ntk_trace_<block> of each block's kernel where the kernel comes in blocks.

    `kernel(params) -> (K (N, N) or None, {block: K_block})` (None: K is the sum of the blocks); by
    default the model's structured `ntk_blocks`.
    K_0 is the kernel at params0, or at the first call when params0 is None. Kernels are computed
    without TF32 (exact_matmul) and compared in float64."""

    def __init__(self, model: Model, X: torch.Tensor, params0: Params | None = None, every: int = 10,
                 kernel: Callable[[Params], tuple[torch.Tensor | None, dict[str, torch.Tensor]]] | None = None,
                 field: str = "diagnostics.ntk_every"):
        if every <= 0:
            raise ValueError(f"every = {every}: must be a positive number of steps")
        if kernel is None and not hasattr(model, "ntk_blocks"):
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
               "ntk_drift": _fro(K - self.K0) / _fro(self.K0)}
        row.update({f"ntk_trace_{name}": float(b.trace()) for name, b in blocks.items()})
        return row
