"""Squared losses. Each is `scale * sum_b (f_b - y_b)^2` with a scale fixed by its name."""

from __future__ import annotations

import torch

LOSSES = ("mse", "half-mse", "half-sum")


def loss_scale(kind: str, n: int) -> float:
    """The factor in front of sum (f - y)^2: mse 1/n (Arda et al.), half-mse 1/(2n) (Wu et al.),
    half-sum 1/2."""
    if kind == "mse":
        return 1.0 / n
    if kind == "half-mse":
        return 0.5 / n
    if kind == "half-sum":
        return 0.5
    raise ValueError(f"loss = {kind!r}: allowed are {', '.join(LOSSES)}")


def squared_loss(f: torch.Tensor, y: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """The loss of predictions f (B,) against targets y (B,); a 0-d tensor."""
    return loss_scale(kind, f.shape[0]) * ((f - y) ** 2).sum()


def squared_losses(f: torch.Tensor, y: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """The losses of S stacked runs, predictions f (S, B) against targets y (S, B): (S,)."""
    return loss_scale(kind, f.shape[-1]) * ((f - y) ** 2).sum(-1)
