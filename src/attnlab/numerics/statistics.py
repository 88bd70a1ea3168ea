"""Statistics of tensors that the recorders and the theory share: attention statistics, the
smallest singular value of a feature matrix, Euclidean and Frobenius norms that do not overflow."""

from __future__ import annotations

import math

import torch


def frobenius(t: torch.Tensor) -> float:
    """||t||_F of a tensor of any shape."""
    return float(euclidean_norms(t.reshape(-1), dim=0))


def euclidean_norms(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """||t||_2 along `dim`: torch.linalg.vector_norm's value wherever that is finite (the same bits), and
    where its sum of squares overflows the dtype though every entry is finite (float32 entries beyond
    about 1e19), max|t| ||t / max|t| || instead of inf. A recurrence with gain above 1 can reach such
    gradients on long sequences."""
    norms = torch.linalg.vector_norm(t, dim=dim)
    if math.isfinite(norms.sum()):   # one reduction: the common case costs little on a training step
        return norms
    largest = t.abs().amax(dim=dim, keepdim=True)
    scaled = torch.linalg.vector_norm(t / largest.clamp_min(torch.finfo(t.dtype).tiny), dim=dim) * largest.squeeze(dim)
    return torch.where(torch.isinf(norms) & torch.isfinite(largest.squeeze(dim)), scaled, norms)


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
