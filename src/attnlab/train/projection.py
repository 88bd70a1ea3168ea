"""Euclidean projection onto per-head balls around the initialisation.

Every parameter block has its head (or unit) index first. Block `name` of head i is kept within
||theta_i - theta_i(0)|| <= rho / sqrt(m) (Frobenius norm for matrices); rho = None leaves it free.
Two recorders measure the balls: HeadBallRecorder (always on: each block's head radius and the
largest head distance of the last iterate) and BallUsageRecorder (on request, "ball": the share of
its ball the farthest head uses, and the fraction of heads on the boundary, along the run).
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch

from attnlab.models.base import Params
from attnlab.numerics.statistics import euclidean_norms
from attnlab.recorder import Finished, Recorder, RunRecorder

BOUNDARY_TOLERANCE = 1e-4   # a head within this relative distance of its radius is on the boundary


def head_distances(params: Params, centres: Params, name: str, batch_dims: int = 0) -> torch.Tensor:
    """||theta_i - theta_i(0)|| for every head of block `name`: shape (*batch, m)."""
    return _per_head_norms(params[name] - centres[name], batch_dims)


def _per_head_norms(diff: torch.Tensor, batch_dims: int) -> torch.Tensor:
    return euclidean_norms(diff.reshape(*diff.shape[:batch_dims + 1], -1))


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


def head_radii(radii: dict[str, float | None], blocks: Sequence[str], width: int) -> dict[str, float | None]:
    """The radius rho / sqrt(width) of every head's ball, per block (None: unconstrained)."""
    return {name: (None if radii.get(name) is None else radii[name] / math.sqrt(width)) for name in blocks}


class HeadBallRecorder(Recorder):
    """Summary only: head_radius (rho / sqrt(m) per block, None where unconstrained) and
    max_head_distance (per block, the largest ||theta_i - theta_i(0)|| over the heads of the last iterate)."""

    def __init__(self, radii: dict[str, float | None], blocks: Sequence[str], width: int):
        self.blocks = list(blocks)
        self.radius = head_radii(radii, self.blocks, width)

    def summarise(self, finished: Finished) -> list[dict]:
        farthest = {name: head_distances(finished.last, finished.theta0, name, batch_dims=1).max(dim=1).values.tolist()
                    for name in self.blocks}   # (S,) per block
        return [{"head_radius": dict(self.radius),
                 "max_head_distance": {name: farthest[name][s] for name in self.blocks}}
                for s in range(len(finished.curves))]


class BallUsageRecorder(RunRecorder):
    """Per block with a radius (the configured one, also under unprojected GD):

        ball_usage_<block>     max_i ||theta_i - theta_i(0)|| / (rho / sqrt(m)), the share of its ball
                               the farthest head uses (<= 1 under projection, up to rounding)
        ball_boundary_<block>  the fraction of heads at distance >= (1 - BOUNDARY_TOLERANCE) rho / sqrt(m),
                               those the projection holds back

    Summary: max.ball_usage_<block> and max.ball_boundary_<block> along the run."""

    def __init__(self, params0: Params, radii: dict[str, float | None], width: int, every: int = 1,
                 field: str = "diagnostics.record.ball"):
        self.radius = {name: r for name, r in head_radii(radii, list(radii), width).items() if r is not None}
        if not self.radius:
            raise ValueError(f"{field}: no block has a ball (model radius keys {list(radii) or 'none'}, "
                             "train.radius 'none' for all); remove it or give train.radius a number")
        self.params0 = {name: params0[name].clone() for name in self.radius}
        self.every = every

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        row = {}
        for name, radius in self.radius.items():
            distance = head_distances(params, self.params0, name)   # (m,)
            row[f"ball_usage_{name}"] = float(distance.max()) / radius
            row[f"ball_boundary_{name}"] = float((distance >= (1 - BOUNDARY_TOLERANCE) * radius).double().mean())
        return row

    def summarise_run(self, curves: pd.DataFrame) -> dict:
        return {"max": {c: float(curves[c].max()) for c in curves if c.startswith(("ball_usage_", "ball_boundary_"))}}
