"""Smooth bounded activations with their derivatives (the theory needs both bounded)."""

from __future__ import annotations

import math
from typing import Callable

import torch

Activation = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def _tanh_prime(x: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(x) ** 2


def _erf(x: torch.Tensor) -> torch.Tensor:
    return torch.erf(x / math.sqrt(2))


def _erf_prime(x: torch.Tensor) -> torch.Tensor:
    return math.sqrt(2 / math.pi) * torch.exp(-0.5 * x**2)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": (torch.tanh, _tanh_prime),
    "erf": (_erf, _erf_prime),
}


def activation(name: str) -> Activation:
    """The pair (sigma, sigma') for `name`; only smooth bounded activations are accepted."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation = {name!r}: allowed are {', '.join(ACTIVATIONS)} "
                         "(the theory needs a smooth, bounded activation with bounded derivative)") from None


# sup |sigma| and sup |sigma'| (= Lip(sigma)) of each activation; both have sigma(0) = 0.
ACTIVATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (1.0, 1.0),
    "erf": (1.0, math.sqrt(2 / math.pi)),
}
