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
from attnlab.train.gradient_norms import SEQUENCE_BLOCK, early_gradient_norms, window_max_mean
from attnlab.train.losses import squared_loss
from attnlab.train.projection import block_radii, head_distances, project
from attnlab.train.stacking import Stacked, run_slice, select, stack

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


def _diverging(loss: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """Per run (S,): a non-finite loss, or one above DIVERGENCE_FACTOR times the initial loss."""
    return ~torch.isfinite(loss) | (loss > DIVERGENCE_FACTOR * initial.clamp_min(1e-300))


def _row_values(curves: pd.DataFrame, index: int) -> dict[str, float]:
    """The finite values of one recorded row (0: the first, -1: the last) of the curves."""
    row = curves.iloc[index].drop("step").astype(float)
    return {k: float(v) for k, v in row.items() if math.isfinite(v)}


def _run_norms(t: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each run's block: (S, ...) -> (S,)."""
    return t.reshape(t.shape[0], -1).norm(dim=1)


class Trainer:
    """Trains `model` from `params0` on `data` as `config` says (method, steps, step size, radii).

    `fit` trains one run; `fit_many` trains S runs that differ only by seed (initial parameters,
    data, mini-batches) as one stacked computation, giving each run the numbers `fit` gives it (on
    CPU bit for bit at the first step; stacked kernels may round later steps differently, ~1e-7).
    """

    def __init__(self, model: Model, config: TrainConfig, seed: int = 0,
                 recorders: list[Recorder] | None = None,
                 progress: Callable[[int, float], None] | None = None):
        self.model, self.config, self.seed = model, config, seed
        self.recorders = recorders or []
        self.progress = progress
        self.loss_kind = config.loss or model.default_loss
        projected = config.method in ("projgd", "projsgd")
        self.radii = block_radii(model.radius_keys, config.radius.model_dump()) if projected else {}
        loop = lambda params, X, *rest: model.loops_over_runs(params, X)   # noqa: E731
        self._loss_and_grad = Stacked(model.loss_and_grad, shared=(3,), prefer_loop=loop)
        self._loss = Stacked(lambda p, X, y: squared_loss(model(p, X), y, self.loss_kind), prefer_loop=loop)

    def loss(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> float:
        """Loss of one run's `params` on (X, y)."""
        with torch.no_grad():
            return float(squared_loss(self.model(params, X), y, self.loss_kind))

    def fit(self, params0: Params, data: Dataset) -> TrainResult:
        """Run the configured number of steps from params0 and return the iterates and curves."""
        return self.fit_many([params0], [data], [self.seed], [self.recorders])[0]

    def fit_many(self, params0: list[Params], data: list[Dataset], seeds: list[int],
                 recorders: list[list[Recorder]] | None = None) -> list[TrainResult]:
        """Train S equally shaped runs together; run s starts at params0[s] on data[s] and draws its
        mini-batches from seeds[s]. A run that diverges stops there; the others go on."""
        cfg, S = self.config, len(params0)
        recorders = recorders or [[] for _ in range(S)]
        start = time.perf_counter()
        lr, every = cfg.step_size, cfg.record_interval
        theta0 = stack(params0)
        X, y = stack([d.X_train for d in data]), stack([d.y_train for d in data])
        Xv, yv = stack([d.X_val for d in data]), stack([d.y_val for d in data])
        batches = [generator(seed, "batches") for seed in seeds] if cfg.method == "projsgd" else None
        params, average, best = _clone(theta0), _clone(theta0), _clone(theta0)
        best_loss = torch.full((S,), math.inf, dtype=torch.float64)
        best_step = torch.zeros(S, dtype=torch.long)
        active = torch.ones(S, dtype=torch.bool)
        rows: list[dict[int, dict[str, float]]] = [{} for _ in range(S)]
        initial_loss, diverged_at = None, [None] * S
        for k in range(cfg.steps):
            evaluated = batches is None or k % every == 0   # SGD sees the full loss only when recording
            if batches is None:
                loss, grads = self._loss_and_grad(S, params, X, y, self.loss_kind)
            else:
                idx = torch.stack([torch.randint(X.shape[1], (cfg.batch_size,), generator=g)
                                   for g in batches]).to(X.device)
                rows_of = torch.arange(S, device=X.device).unsqueeze(1)
                _, grads = self._loss_and_grad(S, params, X[rows_of, idx], y[rows_of, idx], self.loss_kind)
                loss = self._losses(S, params, X, y) if evaluated else torch.full((S,), math.nan)
            loss = loss.detach().to("cpu", torch.float64)
            initial_loss = loss.clone() if initial_loss is None else initial_loss
            if evaluated:
                diverging = active & _diverging(loss, initial_loss)
                for s in diverging.nonzero().flatten().tolist():
                    diverged_at[s], rows[s][k] = k, {"train_loss": float(loss[s])}
                active &= ~diverging
                if not active.any():
                    break
            improved = active & (loss < best_loss)
            best = select(improved.to(X.device), params, best)
            best_loss, best_step = torch.where(improved, loss, best_loss), torch.where(improved, k, best_step)
            average = select(active.to(X.device),
                             {n: average[n] + (params[n] - average[n]) / (k + 1) for n in average}, average)
            if k % every == 0:
                self._record(rows, active, k, params, theta0, grads, loss, Xv, yv)
            self._call_recorders(rows, recorders, active, k, params)
            if self.progress is not None:
                self.progress(k, float(loss[active].mean()))
            stepped = project({n: params[n] - lr * grads[n] for n in params}, theta0, self.radii,
                              self.model.width, batch_dims=1)
            params = select(active.to(X.device), stepped, params)
        final = active.clone()
        if final.any():
            loss = self._losses(S, params, X, y).to("cpu", torch.float64)
            self._record(rows, final, cfg.steps, params, theta0, None, loss, Xv, yv)
            self._call_recorders(rows, recorders, final, cfg.steps, params, every=1)
            improved = final & (loss < best_loss)
            best = select(improved.to(X.device), params, best)
            best_step = torch.where(improved, cfg.steps, best_step)
        losses = {name: self._split_losses(S, iterate, X, y, Xv, yv)
                  for name, iterate in (("last", params), ("best", best), ("average", average))}
        gaps = (self._optimisation_gaps(S, params, theta0, X, y, final, losses, best_loss)
                if cfg.reference is not None else [None] * S)
        wall_time = (time.perf_counter() - start) / S
        head_distance = {name: head_distances(params, theta0, name, batch_dims=1).max(dim=1).values.tolist()
                         for name in self.model.blocks}
        results = []
        for s in range(S):
            steps_run = cfg.steps if diverged_at[s] is None else diverged_at[s]
            curves = pd.DataFrame.from_dict(rows[s], orient="index").rename_axis("step").reset_index()
            summary = {"method": cfg.method, "steps_run": steps_run, "lr": lr, "loss": self.loss_kind,
                       "last": losses["last"][s], "best": {**losses["best"][s], "step": int(best_step[s])},
                       "average": losses["average"][s], "diverged_at": diverged_at[s],
                       "max": {c: float(curves[c].max()) for c in curves
                               if c.startswith(("grad_norm", "dist_", "output_grad_"))},
                       "min_val_loss": float(curves["val_loss"].min()) if "val_loss" in curves else math.nan,
                       "initial": _row_values(curves, 0), "final": _row_values(curves, -1),
                       "sequence_grad_norm": self._sequence_grad_norm(curves),
                       "grad_norms": early_gradient_norms(curves, self.model.blocks),
                       "head_radius": self._head_radii(),
                       "max_head_distance": {name: head_distance[name][s] for name in self.model.blocks},
                       "wall_time_s": wall_time, "runs_stacked": S}
            if gaps[s] is not None:
                summary["gap"] = gaps[s]
            results.append(TrainResult(last=run_slice(params, s), best=run_slice(best, s),
                                       average=run_slice(average, s), curves=curves, summary=summary))
        return results

    def _optimisation_gaps(self, S: int, params: Params, theta0: Params, X: torch.Tensor, y: torch.Tensor,
                           finished: torch.Tensor, losses: dict[str, list[dict]],
                           best_loss: torch.Tensor) -> list[dict]:
        """The optimisation gap of every run: its training loss after the run minus the lowest loss of
        a reference run (config.reference) in the same ball, with how the reference was obtained.

        The reference is projected gradient descent onto the same balls (around theta_0) from the last
        iterate, with backtracking: the step starts at step_factor times the training step, a step
        that does not lower the loss is refused and the step halved. It stops when the loss changed by
        less than `tolerance` (relative) over the last `window` steps, or after `max_steps`. Every
        point it visits lies in the ball, so its lowest loss (and the run's own best) estimates the
        ball's minimum from above, and the gap from below."""
        ref = self.config.reference
        final = torch.tensor([losses["last"][s]["train_loss"] for s in range(S)], dtype=torch.float64)
        running = finished.clone() & torch.isfinite(final)
        converged = torch.zeros(S, dtype=torch.bool)
        steps = torch.zeros(S, dtype=torch.long)
        step = torch.full((S,), self.config.step_size * ref.step_factor, dtype=torch.float64)
        current = params
        loss, grads = self._loss_and_grad(S, current, X, y, self.loss_kind)
        loss = loss.detach().to("cpu", torch.float64)
        history = [loss]
        for _ in range(ref.max_steps):
            if not running.any():
                break
            eta = step.to(X.device, X.dtype)
            candidate = project({n: current[n] - eta.reshape(-1, *(1,) * (g.dim() - 1)) * g
                                 for n, g in grads.items()}, theta0, self.radii, self.model.width, batch_dims=1)
            new_loss, new_grads = self._loss_and_grad(S, candidate, X, y, self.loss_kind)
            new_loss = new_loss.detach().to("cpu", torch.float64)
            accept = running & torch.isfinite(new_loss) & (new_loss < loss)
            current = select(accept.to(X.device), candidate, current)
            grads = select(accept.to(X.device), new_grads, grads)
            loss = torch.where(accept, new_loss, loss)
            step = torch.where(running & ~accept, step / 2, step)
            steps += running.long()
            history.append(loss)
            if len(history) > ref.window:
                before = history[-ref.window - 1]
                settled = running & ((before - loss).abs() <= ref.tolerance * before.abs())
                converged |= settled
                running &= ~settled
        lowest = torch.minimum(torch.minimum(best_loss, final), loss)
        gaps = []
        for s in range(S):
            zero = float(squared_loss(torch.zeros_like(y[s]), y[s], self.loss_kind))   # loss at init
            value = float(final[s] - lowest[s]) if bool(finished[s]) else math.nan
            gaps.append({"value": value, "relative": value / zero if zero > 0 else math.nan,
                         "best": float(losses["best"][s]["train_loss"] - lowest[s]) if bool(finished[s]) else math.nan,
                         "reference_loss": float(lowest[s]), "reference_steps": int(steps[s]),
                         "converged": bool(converged[s]), "tolerance": ref.tolerance, "window": ref.window,
                         "max_steps": ref.max_steps, "step_factor": ref.step_factor,
                         "how": "ProjGD with backtracking from the last iterate, in the same balls"})
        return gaps

    def _sequence_grad_norm(self, curves: pd.DataFrame) -> float:
        """The gradient norm of the block that mixes positions (W of the Transformer, u of the
        IndRNN): its maximum within each tenth of the run, averaged (spec recurrent-baseline.md, E4)."""
        column = f"grad_norm_{SEQUENCE_BLOCK.get(self.model.name)}"
        if column not in curves:
            return math.nan
        return window_max_mean(curves["step"], curves[column], window=max(1, self.config.steps // 10),
                               total_steps=self.config.steps)

    def _head_radii(self) -> dict[str, float | None]:
        """The radius rho / sqrt(m) of every head's ball, per block (None: unconstrained)."""
        return {name: (None if self.radii.get(name) is None else self.radii[name] / math.sqrt(self.model.width))
                for name in self.model.blocks}

    def _losses(self, S: int, params: Params, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of every run on its own (X, y): (S,)."""
        if X.shape[1] == 0:
            return torch.full((S,), math.nan)
        with torch.no_grad():
            return self._loss(S, params, X, y)

    def _split_losses(self, S: int, params: Params, X: torch.Tensor, y: torch.Tensor, Xv: torch.Tensor,
                      yv: torch.Tensor) -> list[dict[str, float]]:
        """Training and validation loss of every run, and the training loss relative to that of the
        zero predictor (the loss at the paired initialisation): comparable across target scales."""
        train, val = self._losses(S, params, X, y).tolist(), self._losses(S, params, Xv, yv).tolist()
        zero = [float(squared_loss(torch.zeros_like(t), t, self.loss_kind)) for t in y]
        return [{"train_loss": t, "val_loss": v, "relative_train_loss": t / z if z > 0 else math.nan}
                for t, v, z in zip(train, val, zero)]

    def _record(self, rows: list[dict], active: torch.Tensor, k: int, params: Params, theta0: Params,
                grads: Params | None, loss: torch.Tensor, Xv: torch.Tensor, yv: torch.Tensor) -> None:
        """Add the curve row of step k (losses, per-block gradient norms and distances) to every
        active run, with one transfer from the device."""
        S = loss.shape[0]
        columns = {"train_loss": loss, "val_loss": self._losses(S, params, Xv, yv).cpu()}
        for name in self.model.blocks:
            columns[f"grad_norm_{name}"] = (_run_norms(grads[name]) if grads is not None
                                            else torch.full((S,), math.nan))
            columns[f"dist_{name}"] = _run_norms(params[name] - theta0[name])
        columns["grad_norm"] = sum(columns[f"grad_norm_{name}"].to(torch.float64)**2
                                   for name in self.model.blocks).sqrt()   # all blocks
        values = {key: value.to("cpu", torch.float64).tolist() for key, value in columns.items()}
        for s in active.nonzero().flatten().tolist():
            rows[s].setdefault(k, {}).update({key: value[s] for key, value in values.items()})

    @staticmethod
    def _call_recorders(rows: list[dict], recorders: list[list[Recorder]], active: torch.Tensor, k: int,
                        params: Params, every: int | None = None) -> None:
        for s in active.nonzero().flatten().tolist():
            for recorder in recorders[s]:
                if k % (every or recorder.every) == 0:
                    rows[s].setdefault(k, {}).update(recorder(k, run_slice(params, s)))
