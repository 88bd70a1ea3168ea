"""Euclidean projection onto per-head balls around the initialisation.

Every parameter block has its head (or unit) index first. Block `name` of head i is kept within
||theta_i - theta_i(0)|| <= rho / sqrt(m) (Frobenius norm for matrices); rho = None leaves it free.
"""

from __future__ import annotations

import math

import torch

from attnlab.models.base import Params


def head_distances(params: Params, centres: Params, name: str, batch_dims: int = 0) -> torch.Tensor:
    """||theta_i - theta_i(0)|| for every head of block `name`: shape (*batch, m)."""
    return _per_head_norms(params[name] - centres[name], batch_dims)


def _per_head_norms(diff: torch.Tensor, batch_dims: int) -> torch.Tensor:
    return diff.reshape(*diff.shape[:batch_dims + 1], -1).norm(dim=-1)


def project(params: Params, centres: Params, radii: dict[str, float | None], width: int,
            batch_dims: int = 0) -> Params:
    """Rescale each head's deviation radially onto its ball of radius rho / sqrt(width).

    params, centres: blocks of shape (*batch, m, ...); `batch_dims` leading axes are independent runs.
    """
    out = dict(params)
    for name, rho in radii.items():
        if rho is None:
            continue
        radius = rho / math.sqrt(width)
        diff = params[name] - centres[name]
        norms = _per_head_norms(diff, batch_dims)
        scale = torch.where(norms > radius, radius / norms.clamp_min(torch.finfo(norms.dtype).tiny), 1.0)
        out[name] = centres[name] + diff * scale.reshape(scale.shape + (1,) * (diff.dim() - scale.dim()))
    return out


def block_radii(radius_keys: dict[str, str], radius: dict[str, float | str]) -> dict[str, float | None]:
    """Map a model's blocks to their radius rho from the config's radii ('none' -> None)."""
    return {block: (None if radius[key] == "none" else float(radius[key])) for block, key in radius_keys.items()}
