"""Gradient-norm measurements for the sequence-length separation (spec recurrent-baseline.md, s. 3-4).

E4 reports, per run, the full-batch training-loss gradient norm with respect to the weights that
carry the dependency across positions (the recurrent weights u of the IndRNN, the attention
weights W of the Transformer), two ways:

- the published statistic (`block_maxima`, recorder BlockMaxRecorder, asked for by name:
  `diagnostics.record: {block_max: B}`): the curve of steps 0..steps-1 cut into consecutive blocks
  of B steps (the last one possibly partial), the maximum of each block; the summary keeps their
  mean, sd and count, from which the report pools the runs exactly (`pooled_block_statistics`);
- the windowed statistic (`window_max_mean`, always recorded): the maximum within each tenth of
  the run, averaged over the tenths; the same number as the block mean when steps = 10 B.

Row s of the trainer's curves holds the gradient at iterate s (the initialisation is iterate 0),
the iterate from which step s is taken: the published trainer logs the same gradient at its step s.
E4g's gradient norms (each block's and the total over all blocks, at initialisation and averaged
over the recorded steps 1..50) are `early_gradient_norms`.

Two always-on recorders of the stacked runs (attnlab.train.recorders) carry the curves and the windowed number:
BlockGradientRecorder (the per-block gradient-norm and distance columns) and
SequenceGradientRecorder (sequence_grad_norm).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from attnlab.models.base import Model, Params
from attnlab.numerics.statistics import euclidean_norms, frobenius
from attnlab.recorder import Finished, Recorder, RunRecorder, StepState


def sequence_block(model: Model) -> str:
    """The parameter block that mixes positions (the model's `sequence_block`: u for the IndRNN, W
    for the Transformer); ValueError for a model without one."""
    if model.sequence_block is None:
        raise ValueError(f"model {model.name!r}: no sequence block (the block that mixes positions)")
    return model.sequence_block


def window_max_mean(steps: Sequence[int], values: Sequence[float], window: int = 500,
                    total_steps: int | None = None) -> float:
    """Mean over consecutive windows [k w, (k+1) w) of the maximum of `values` inside each window.

    steps, values: a recorded curve (NaNs are skipped). Points at step >= total_steps (e.g. the
    trainer's row for the final iterate) are left out. NaN when no point remains."""
    if window <= 0:
        raise ValueError(f"window = {window}: must be a positive number of steps")
    steps_a = np.asarray(steps, dtype=np.int64)
    end = total_steps if total_steps is not None else int(steps_a.max(initial=-1)) + 1
    maxima = block_maxima(steps_a, values, window, end)
    return float(maxima.mean()) if len(maxima) else math.nan


def block_maxima(steps: Sequence[int], values: Sequence[float], block: int, total_steps: int) -> np.ndarray:
    """The maximum of `values` within each block of steps [k B, (k+1) B) of 0..total_steps-1 (B =
    `block`; the last block is partial when B does not divide total_steps), in block order.

    steps, values: a recorded curve; NaNs are skipped, points at step >= total_steps (the row of
    the final iterate) left out, and a block without a finite value gives no maximum. Returns
    (number of blocks with a value,)."""
    if block <= 0:
        raise ValueError(f"block = {block}: must be a positive number of steps")
    steps_a = np.asarray(steps, dtype=np.int64)
    values_a = np.asarray(values, dtype=np.float64)
    if steps_a.shape != values_a.shape:
        raise ValueError(f"steps {steps_a.shape} and values {values_a.shape} must have the same length")
    keep = np.isfinite(values_a) & (steps_a >= 0) & (steps_a < total_steps)
    blocks = steps_a[keep] // block
    return np.array([values_a[keep][blocks == k].max() for k in np.unique(blocks)], dtype=np.float64)


def block_max_summary(maxima: np.ndarray, block: int) -> dict[str, float | int]:
    """What the report needs to pool runs exactly: the mean of a run's block maxima, their sd
    (ddof = 1; NaN for fewer than two), their count, and the block length in steps."""
    count = len(maxima)
    return {"mean": float(maxima.mean()) if count else math.nan,
            "sd": float(maxima.std(ddof=1)) if count > 1 else math.nan,
            "count": count, "block_steps": block}


EARLY_STEPS = 50


def early_gradient_norms(curves, blocks: Sequence[str], last_step: int = EARLY_STEPS) -> dict[str, dict[str, float]]:
    """Per block and in total (sqrt of the sum of the squared block norms): the gradient norm at
    initialisation (the row of step 0) and its mean over the recorded steps 1..last_step, from the
    trainer's curves (columns step, grad_norm_<block>). NaN where no such row was recorded."""
    columns = {name: f"grad_norm_{name}" for name in blocks}
    if not all(c in curves for c in columns.values()):
        return {"init": {}, f"steps_1_{last_step}": {}}
    table = curves[["step", *columns.values()]].rename(columns={c: n for n, c in columns.items()})
    table = table.assign(total=np.sqrt((table[list(blocks)] ** 2).sum(axis=1, min_count=len(blocks))))
    names = [*blocks, "total"]
    at_init = table.loc[table["step"] == 0, names]
    early = table.loc[(table["step"] >= 1) & (table["step"] <= last_step), names]
    return {"init": {n: float(at_init[n].iloc[0]) if len(at_init) else math.nan for n in names},
            f"steps_1_{last_step}": {n: float(early[n].mean()) if len(early) else math.nan for n in names}}


class GradientNormRecorder(RunRecorder):
    """One run: the full-batch gradient norm of one block, `grad_full_{block}`.

    The trainer's own curves hold the gradient of the step taken (a mini-batch one under projsgd)
    only at record steps; this recorder evaluates the full-batch gradient every `every` steps."""

    def __init__(self, model: Model, X: torch.Tensor, y: torch.Tensor, block: str | None = None,
                 every: int = 1, loss: str | None = None):
        self.model, self.X, self.y, self.every = model, X, y, every
        self.block = block or sequence_block(model)
        self.loss = loss or model.default_loss
        if self.block not in model.blocks:
            raise ValueError(f"block = {self.block!r}: model {model.name!r} has {', '.join(model.blocks)}")

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        _, grads = self.model.loss_and_grad(params, self.X, self.y, self.loss)
        return {f"grad_full_{self.block}": frobenius(grads[self.block])}


def _run_norms(t: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each run's block: (S, ...) -> (S,)."""
    return euclidean_norms(t.reshape(t.shape[0], -1), dim=1)


class BlockGradientRecorder(Recorder):
    """The S runs at once: grad_norm_<block> (the gradient of the step taken: a mini-batch one under
    projsgd; NaN at the final row), dist_<block> = ||theta - theta_0||_F and grad_norm (all blocks)
    of the S runs; summary max.grad_norm*, max.dist_* and grad_norms (early_gradient_norms)."""

    def __init__(self, blocks: Sequence[str], every: int):
        self.blocks, self.every = list(blocks), every
        self._deviation: dict[str, torch.Tensor] = {}   # theta - theta_0 per block, a buffer kept between records

    def record(self, state: StepState) -> dict[str, torch.Tensor]:
        S = next(iter(state.params.values())).shape[0]
        columns = {}
        for name in self.blocks:
            columns[f"grad_norm_{name}"] = (_run_norms(state.grads[name]) if state.grads is not None
                                            else torch.full((S,), math.nan))
            if name not in self._deviation:
                self._deviation[name] = torch.empty_like(state.params[name])
            columns[f"dist_{name}"] = _run_norms(torch.sub(state.params[name], state.theta0[name],
                                                           out=self._deviation[name]))
        columns["grad_norm"] = sum(columns[f"grad_norm_{name}"].to(torch.float64)**2
                                   for name in self.blocks).sqrt()   # all blocks
        return columns

    def summarise(self, finished: Finished) -> list[dict]:
        return [{"max": {c: float(curves[c].max()) for c in curves if c.startswith(("grad_norm", "dist_"))},
                 "grad_norms": early_gradient_norms(curves, self.blocks)} for curves in finished.curves]


class SequenceGradientRecorder(Recorder):
    """Summary only: sequence_grad_norm, the gradient norm of the block that mixes positions
    (column grad_norm_<block>), its maximum within each tenth of the run, averaged (E4); NaN for a
    model without such a block."""

    def __init__(self, block: str | None, steps: int):
        self.block, self.steps = block, steps

    def summarise(self, finished: Finished) -> list[dict]:
        return [{"sequence_grad_norm": self._value(curves)} for curves in finished.curves]

    def _value(self, curves: pd.DataFrame) -> float:
        column = f"grad_norm_{self.block}"
        if column not in curves:
            return math.nan
        return window_max_mean(curves["step"], curves[column], window=max(1, self.steps // 10),
                               total_steps=self.steps)


class BlockMaxRecorder(RunRecorder):
    """Summary only, one run: sequence_grad_block_max, the block maxima (`block_maxima`, blocks of
    `block` steps) of the sequence block's gradient norm (column grad_norm_<block>) as
    `block_max_summary` gives them. The published E4 statistic at block = 500 and 5000 steps."""

    def __init__(self, model: Model, block: int, steps: int, field: str = "diagnostics.record.block_max"):
        self.sequence_block = model.sequence_block
        if self.sequence_block is None:
            raise ValueError(f"{field}: model {model.name!r} has no sequence block (the block that mixes "
                             f"positions); remove {field}")
        self.block, self.steps = block, steps

    def summarise_run(self, curves: pd.DataFrame) -> dict:
        column = f"grad_norm_{self.sequence_block}"
        maxima = (block_maxima(curves["step"], curves[column], self.block, self.steps) if column in curves
                  else np.array([]))
        return {"sequence_grad_block_max": block_max_summary(maxima, self.block)}
