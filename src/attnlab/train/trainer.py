"""Gradient descent, projected gradient descent and projected SGD for attnlab models.

theta_{k+1} = Proj(theta_k - eta * grad L(theta_k)). The trainer keeps the last iterate, the best
iterate (lowest training loss seen) and the averaged iterate, the running mean of theta_0..theta_{tau-1}
that the kernel-regime theorem speaks of. Curves are recorded every `record_every` steps; recorders
add their own columns on their own schedules (NTK drift, attention statistics, ...).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import pandas as pd
import torch

from attnlab.config import TrainConfig
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model, Params
from attnlab.seeding import generator
from attnlab.train.losses import squared_loss
from attnlab.train.projection import block_radii, project

DIVERGENCE_FACTOR = 1e6


class Recorder(Protocol):
    """Adds named measurements of the current iterate to the curves every `every` steps."""

    every: int

    def __call__(self, step: int, params: Params) -> dict[str, float]: ...


@dataclass
class TrainResult:
    """The three iterates, the recorded curves (one row per recorded step) and a summary."""

    last: Params
    best: Params
    average: Params
    curves: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _clone(params: Params) -> Params:
    return {k: v.clone() for k, v in params.items()}


def _diverging(loss: float, initial: float) -> bool:
    """A non-finite loss, or one above DIVERGENCE_FACTOR times the initial loss."""
    return not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(initial, 1e-300)


def _norm(t: torch.Tensor) -> float:
    return float(t.norm())


class Trainer:
    """Trains `model` from `params0` on `data` as `config` says (method, steps, step size, radii)."""

    def __init__(self, model: Model, config: TrainConfig, seed: int = 0,
                 recorders: list[Recorder] | None = None,
                 progress: Callable[[int, float], None] | None = None):
        self.model, self.config, self.seed = model, config, seed
        self.recorders = recorders or []
        self.progress = progress
        self.loss_kind = config.loss or model.default_loss
        projected = config.method in ("projgd", "projsgd")
        self.radii = block_radii(model.radius_keys, config.radius.model_dump()) if projected else {}

    def loss(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> float:
        """Loss of `params` on (X, y), evaluated in batches' worth of memory."""
        with torch.no_grad():
            return float(squared_loss(self.model(params, X), y, self.loss_kind))

    def fit(self, params0: Params, data: Dataset) -> TrainResult:
        """Run the configured number of steps from params0 and return the iterates and curves."""
        cfg, model = self.config, self.model
        start = time.perf_counter()
        lr = cfg.step_size
        X, y = data.X_train, data.y_train
        batches = generator(self.seed, "batches") if cfg.method == "projsgd" else None
        params, average = _clone(params0), _clone(params0)
        best, best_loss, best_step = _clone(params0), math.inf, 0
        rows: dict[int, dict[str, float]] = {}
        initial_loss, diverged_at = None, None
        every = cfg.record_interval
        for k in range(cfg.steps):
            if batches is None:
                train_loss, grads = model.loss_and_grad(params, X, y, self.loss_kind)
                train_loss = float(train_loss)
            else:
                idx = torch.randint(X.shape[0], (cfg.batch_size,), generator=batches).to(X.device)
                _, grads = model.loss_and_grad(params, X[idx], y[idx], self.loss_kind)
                train_loss = self.loss(params, X, y) if k % every == 0 else math.nan
            evaluated = batches is None or k % every == 0   # SGD sees the full loss only when recording
            initial_loss = train_loss if initial_loss is None else initial_loss
            if evaluated and _diverging(train_loss, initial_loss):
                diverged_at = k
                rows[k] = {"train_loss": train_loss}
                break
            if train_loss < best_loss:
                best, best_loss, best_step = _clone(params), train_loss, k
            for name in average:
                average[name] += (params[name] - average[name]) / (k + 1)
            if k % every == 0:
                rows[k] = self._row(params, params0, grads, train_loss, data)
            for recorder in self.recorders:
                if k % recorder.every == 0:
                    rows.setdefault(k, {}).update(recorder(k, params))
            if self.progress is not None:
                self.progress(k, train_loss)
            params = {name: params[name] - lr * grads[name] for name in params}
            params = project(params, params0, self.radii, model.width)
        final_step = cfg.steps if diverged_at is None else diverged_at
        if diverged_at is None:
            final_loss = self.loss(params, X, y)
            rows[final_step] = {**rows.get(final_step, {}),
                                **self._row(params, params0, None, final_loss, data)}
            for recorder in self.recorders:
                rows[final_step].update(recorder(final_step, params))
            if final_loss < best_loss:
                best, best_loss, best_step = _clone(params), final_loss, final_step
        curves = pd.DataFrame.from_dict(rows, orient="index").rename_axis("step").reset_index()
        summary = self._summary(params, best, average, data, best_step, final_step, diverged_at, lr)
        summary["wall_time_s"] = time.perf_counter() - start
        return TrainResult(last=params, best=best, average=average, curves=curves, summary=summary)

    def _row(self, params: Params, params0: Params, grads: Params | None, train_loss: float,
             data: Dataset) -> dict[str, float]:
        row = {"train_loss": train_loss, "val_loss": self._val_loss(params, data)}
        for name in self.model.blocks:
            row[f"grad_norm_{name}"] = _norm(grads[name]) if grads is not None else math.nan
            row[f"dist_{name}"] = _norm(params[name] - params0[name])
        return row

    def _val_loss(self, params: Params, data: Dataset) -> float:
        return self.loss(params, data.X_val, data.y_val) if data.X_val.shape[0] else math.nan

    def _summary(self, last: Params, best: Params, average: Params, data: Dataset, best_step: int,
                 final_step: int, diverged_at: int | None, lr: float) -> dict:
        def losses(params: Params) -> dict[str, float]:
            return {"train_loss": self.loss(params, data.X_train, data.y_train),
                    "val_loss": self._val_loss(params, data)}
        return {
            "method": self.config.method, "steps_run": final_step, "lr": lr, "loss": self.loss_kind,
            "last": losses(last), "best": {**losses(best), "step": best_step}, "average": losses(average),
            "diverged_at": diverged_at,
        }
