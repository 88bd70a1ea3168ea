"""A supervised dataset split into training and validation parts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlab.seeding import generator


@dataclass
class Dataset:
    """X_* (n_*, T, d) sequences and y_* (n_*,) targets (or (n_*, classes) one-hot targets)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def d(self) -> int:
        return self.X_train.shape[-1]

    @property
    def T(self) -> int:
        return self.X_train.shape[-2]

    @property
    def outputs(self) -> int:
        """Target columns: 1 for scalar targets (n,), C for one-hot targets (n, C)."""
        return 1 if self.y_train.dim() == 1 else self.y_train.shape[1]

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "Dataset":
        """The same data in another dtype / on another device."""
        return Dataset(*(t.to(dtype=dtype, device=device) for t in
                         (self.X_train, self.y_train, self.X_val, self.y_val)))


def split(X: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int) -> Dataset:
    """A seeded random split: round(val_fraction * n) samples go to validation."""
    n = X.shape[0]
    order = torch.randperm(n, generator=generator(seed, "split"))
    n_val = int(round(val_fraction * n))
    val, train = order[:n_val], order[n_val:]
    return Dataset(X[train], y[train], X[val], y[val])


def clip_token_norms(X: torch.Tensor, max_norm: float = 1.0) -> torch.Tensor:
    """Rescale every token to norm at most `max_norm`: x <- x / max(1, ||x|| / max_norm)."""
    norms = X.norm(dim=-1, keepdim=True)
    return X / torch.clamp(norms / max_norm, min=1.0)
