"""Random sequences with Gaussian labels: the synthetic data of Wu et al. (spec shallow-encoder.md, W1).

Tokens are i.i.d. N(0, I_d / d) (so E ||x||^2 = 1), then normalised (tokens.py) to the requested
norm; labels are i.i.d. N(0, 1), independent of the inputs, so the network must memorise them.
"""

from __future__ import annotations

import torch

from attnlab.data.dataset import Dataset, split
from attnlab.data.tokens import normalise_tokens, resolve_norm
from attnlab.seeding import generator


def random_sequence_data(n: int, T: int, d: int, seed: int, token_norm: str = "token",
                         norm: float | str = 1.0, val_fraction: float = 0.0) -> Dataset:
    """n sequences (n, T, d) with labels (n,) ~ N(0, 1), split into training and validation (float64).

    token_norm: "none" keeps the Gaussian tokens scaled by `norm`; "token" / "sequence" rescale each
    token / sequence to norm `norm` ("sqrt-d": sqrt(d) per token, the W4 setting).
    """
    X = torch.randn(n, T, d, generator=generator(seed, "inputs"), dtype=torch.float64) / d**0.5
    target = resolve_norm(norm, d, T, token_norm)
    X = X * target if token_norm == "none" else normalise_tokens(X, token_norm, target)
    y = torch.randn(n, generator=generator(seed, "labels"), dtype=torch.float64)
    return split(X, y, val_fraction, seed)
