"""Statistics of tensors that the recorders and the theory share: attention statistics, the
smallest singular value of a feature matrix, Frobenius norms."""

from __future__ import annotations

import math

import torch


def frobenius(t: torch.Tensor) -> float:
    """||t||_F of a tensor of any shape."""
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
