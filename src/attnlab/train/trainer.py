"""Gradient descent, projected gradient descent and projected SGD for attnlab models.

theta_{k+1} = Proj(theta_k - eta * grad L(theta_k)). The trainer keeps the last iterate, the best
iterate (lowest training loss seen) and the averaged iterate, the running mean of theta_0..theta_{tau-1}
that the kernel-regime theorem speaks of. Curves are recorded every `record_every` steps: the losses,
and the columns of the recorders (attnlab.train.recorders), each on its own schedule; the summary
holds the iterates' losses, the lowest recorded validation loss (min_val_loss over iterates
0..steps; min_val_loss_trained over 1..steps, the published choice), what each recorder makes of
its curves and, when the config asks for it, the optimisation gap against the reference run of
attnlab.train.reference.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd
import torch

from attnlab.config import TrainConfig
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model, Params
from attnlab.models.losses import squared_loss, squared_losses
from attnlab.recorder import Finished, Recorder, StepState
from attnlab.seeding import generator
from attnlab.train.projection import project
from attnlab.train.recorders import always_on_recorders, merge_summary, projected_radii
from attnlab.train.reference import optimisation_gaps
from attnlab.train.stacking import Stacked, run_slice, select, stack

__all__ = ["DIVERGENCE_FACTOR", "TrainResult", "Trainer"]

DIVERGENCE_FACTOR = 1e6


@dataclass
class TrainResult:
    """The three iterates, the recorded curves (one row per recorded step) and a summary."""

    last: Params
    best: Params
    average: Params
    curves: pd.DataFrame
    summary: dict = field(default_factory=dict)


@dataclass
class _Runs:
    """S stacked runs while they train: data (S, n, ...), iterates (blocks (S, ...)), which runs are
    still going (S,), and each run's curve rows {step: {column: value}}."""

    theta0: Params
    X: torch.Tensor
    y: torch.Tensor
    Xv: torch.Tensor
    yv: torch.Tensor
    batches: list[torch.Generator] | None      # projsgd: each run's mini-batch generator
    recorders: list[list[Recorder]]            # each run's own recorders (of that run alone)
    stacked: list[Recorder]                    # the recorders of every run, of the S runs at once
    params: Params
    best: Params
    average: Params
    best_loss: torch.Tensor
    best_step: torch.Tensor
    active: torch.Tensor
    rows: list[dict[int, dict[str, float]]]
    diverged_at: list[int | None]
    initial_loss: list[float] | None = None
    scratch: dict[str, torch.Tensor] = field(default_factory=dict)   # per block, for a step's temporaries
    spare: dict[str, torch.Tensor] = field(default_factory=dict)     # per block, an iterate no longer held

    def scratch_for(self, name: str) -> torch.Tensor:
        """A buffer shaped as block `name` (S, ...), kept from step to step: a fresh tensor of a
        large block costs several times its arithmetic on the CPU (its pages are mapped anew)."""
        if name not in self.scratch:
            self.scratch[name] = torch.empty_like(self.params[name])
        return self.scratch[name]

    @property
    def size(self) -> int:
        return len(self.rows)


def _clone(params: Params) -> Params:
    return {k: v.clone() for k, v in params.items()}


def _diverging(loss: float, initial: float) -> bool:
    """A non-finite loss, or one above DIVERGENCE_FACTOR times the initial loss."""
    return not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(initial, 1e-300)


def _row_values(curves: pd.DataFrame, index: int) -> dict[str, float]:
    """The finite values of one recorded row (0: the first, -1: the last) of the curves."""
    row = curves.iloc[index].drop("step").astype(float)
    return {k: float(v) for k, v in row.items() if math.isfinite(v)}


def _min_val_loss(curves: pd.DataFrame, first_step: int) -> float:
    """The lowest recorded validation loss of iterates first_step..steps: 0 includes the
    initialisation, 1 only the trained iterates (the published min_val_mse, which never evaluates
    the initialisation). NaN when none was recorded."""
    if "val_loss" not in curves:
        return math.nan
    return float(curves.loc[curves["step"] >= first_step, "val_loss"].min())


def _as_list(value: torch.Tensor | Sequence[float]) -> list:
    """S values as Python floats: a floating tensor's convert exactly as they are (tolist moves them
    to the CPU), any other tensor's through float64."""
    if not isinstance(value, torch.Tensor):
        return list(value)
    return (value if value.is_floating_point() else value.to(torch.float64)).tolist()


def _as_lists(columns: dict[str, torch.Tensor | Sequence[float]]) -> dict[str, list]:
    """A recorder's columns of S values as lists of Python floats."""
    return {key: _as_list(value) for key, value in columns.items()}


def _curves(rows: dict[int, dict[str, float]]) -> pd.DataFrame:
    """One run's rows as a table: a column `step`, then one column per measurement."""
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("step").reset_index()


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
        self.radii = projected_radii(model, config)
        loop = lambda params, X, *rest: model.loops_over_runs(params, X)   # noqa: E731
        runs = model.has_run_axis   # the model's own run axis instead of vmap
        self._loss_and_grad = Stacked(model.loss_and_grad, shared=(3,), prefer_loop=loop,
                                      batched=model.loss_and_grad_runs if runs else None)
        self._loss = Stacked(lambda p, X, y: squared_loss(model(p, X), y, self.loss_kind), prefer_loop=loop,
                             batched=(lambda p, X, y: squared_losses(model.forward_runs(p, X), y, self.loss_kind))
                             if runs else None)

    def loss(self, params: Params, X: torch.Tensor, y: torch.Tensor) -> float:
        """Loss of one run's `params` on (X, y)."""
        with torch.no_grad():
            return float(squared_loss(self.model(params, X), y, self.loss_kind))

    def fit(self, params0: Params, data: Dataset) -> TrainResult:
        """Run the configured number of steps from params0 and return the iterates and curves."""
        return self.fit_many([params0], [data], [self.seed], [self.recorders])[0]

    def fit_many(self, params0: list[Params], data: list[Dataset], seeds: list[int],
                 recorders: list[list[Recorder]] | None = None) -> list[TrainResult]:
        """Train S equally shaped runs together; run s starts at params0[s] on data[s], draws its
        mini-batches from seeds[s] and is measured by recorders[s] besides the recorders of every
        run. A run that diverges stops there; the others go on."""
        start = time.perf_counter()
        runs = self._start(params0, data, seeds, recorders)
        for k in range(self.config.steps):
            loss, grads, evaluated = self._loss_and_gradient(runs, k)
            if evaluated and self._stop_diverging(runs, k, loss):
                break
            self._keep_best(runs, k, loss)
            self._update_average(runs, k)
            self._record(runs, k, loss, grads)
            if self.progress is not None:
                self.progress(k, float(loss[runs.active].mean()))
            previous, runs.params = runs.params, select(runs.active, self._projected_step(runs, grads), runs.params)
            runs.spare.update({n: p for n, p in previous.items()
                               if p is not runs.best[n] and p is not runs.params[n]})
        if runs.active.any():
            self._record_final(runs)
        return self._results(runs, start)

    def _start(self, params0: list[Params], data: list[Dataset], seeds: list[int],
               recorders: list[list[Recorder]] | None) -> _Runs:
        """The S runs at step 0: stacked data and initialisation, no rows yet."""
        S, theta0 = len(params0), stack(params0)
        batches = [generator(seed, "batches") for seed in seeds] if self.config.method == "projsgd" else None
        return _Runs(theta0=theta0, X=stack([d.X_train for d in data]), y=stack([d.y_train for d in data]),
                     Xv=stack([d.X_val for d in data]), yv=stack([d.y_val for d in data]), batches=batches,
                     recorders=recorders or [[] for _ in range(S)],
                     stacked=always_on_recorders(self.model, theta0, self.config),
                     params=_clone(theta0), best=_clone(theta0), average=_clone(theta0),
                     best_loss=torch.full((S,), math.inf, dtype=torch.float64),
                     best_step=torch.zeros(S, dtype=torch.long), active=torch.ones(S, dtype=torch.bool),
                     rows=[{} for _ in range(S)], diverged_at=[None] * S)

    def _loss_and_gradient(self, runs: _Runs, k: int) -> tuple[torch.Tensor, Params, bool]:
        """(loss (S,) on the CPU in float64, gradient of the step, whether the loss is the full one):
        projsgd steps on a mini-batch and sees the full loss only at record steps (NaN between)."""
        S = runs.size
        evaluated = runs.batches is None or k % self.config.record_interval == 0
        if runs.batches is None:
            loss, grads = self._loss_and_grad(S, runs.params, runs.X, runs.y, self.loss_kind)
        else:
            _, grads = self._loss_and_grad(S, runs.params, *self._mini_batch(runs), self.loss_kind)
            loss = self._losses(S, runs.params, runs.X, runs.y) if evaluated else torch.full((S,), math.nan)
        return loss.detach().to("cpu", torch.float64), grads, evaluated

    def _mini_batch(self, runs: _Runs) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's next mini-batch from its own generator: (S, batch_size, ...) inputs and targets."""
        X, y = runs.X, runs.y
        idx = torch.stack([torch.randint(X.shape[1], (self.config.batch_size,), generator=g)
                           for g in runs.batches]).to(X.device)
        rows_of = torch.arange(runs.size, device=X.device).unsqueeze(1)
        return X[rows_of, idx], y[rows_of, idx]

    @staticmethod
    def _stop_diverging(runs: _Runs, k: int, loss: torch.Tensor) -> bool:
        """Stop the runs whose loss diverges at step k (their last row: the loss); True when none is left."""
        values = loss.tolist()
        if runs.initial_loss is None:
            runs.initial_loss = values
        for s in runs.active.nonzero().flatten().tolist():
            if _diverging(values[s], runs.initial_loss[s]):
                runs.diverged_at[s], runs.rows[s][k] = k, {"train_loss": values[s]}
                runs.active[s] = False
        return not runs.active.any()

    @staticmethod
    def _keep_best(runs: _Runs, k: int, loss: torch.Tensor) -> None:
        """Make the current iterate the best of the runs whose loss it lowers."""
        improved = runs.active & (loss < runs.best_loss)
        if improved.all():   # the best iterate so far is given up: the next step is written into it
            runs.spare.update({n: b for n, b in runs.best.items() if b is not runs.params[n]})
        runs.best = select(improved, runs.params, runs.best)
        runs.best_loss = torch.where(improved, loss, runs.best_loss)
        runs.best_step = torch.where(improved, k, runs.best_step)

    @staticmethod
    def _update_average(runs: _Runs, k: int) -> None:
        """Fold iterate k into the running mean of the iterates 0..k of the runs still going (in place
        when every run is going: the same arithmetic, without new parameter-sized tensors)."""
        if runs.active.all():
            for n, mean in runs.average.items():
                mean.add_(torch.sub(runs.params[n], mean, out=runs.scratch_for(n)).div_(k + 1))
            return
        average = {n: runs.average[n] + (runs.params[n] - runs.average[n]) / (k + 1) for n in runs.average}
        runs.average = select(runs.active, average, runs.average)

    def _projected_step(self, runs: _Runs, grads: Params) -> Params:
        """Proj(theta - eta * grad) onto the balls around theta_0."""
        step = {n: torch.sub(runs.params[n], torch.mul(grads[n], self.config.step_size, out=runs.scratch_for(n)),
                             out=runs.spare.pop(n, None))
                for n in runs.params}
        return project(step, runs.theta0, self.radii, self.model.width, batch_dims=1)

    def _record(self, runs: _Runs, k: int, loss: torch.Tensor, grads: Params | None, final: bool = False) -> None:
        """Add row k to the curves of the runs still going: the losses and the stacked recorders'
        columns (every record_interval steps; all at the final row), then each run's own recorders'."""
        due = lambda every: every is not None and (final or k % every == 0)   # noqa: E731
        columns: dict[str, torch.Tensor] = {}
        if due(self.config.record_interval):
            columns = {"train_loss": loss, "val_loss": self._losses(runs.size, runs.params, runs.Xv, runs.yv).cpu()}
        state = StepState(k, runs.params, runs.theta0, grads)
        for recorder in runs.stacked:
            if due(recorder.every):
                columns.update(recorder.record(state))
        values = _as_lists(columns)
        for s in runs.active.nonzero().flatten().tolist():
            if values:
                runs.rows[s].setdefault(k, {}).update({key: value[s] for key, value in values.items()})
            for recorder in runs.recorders[s]:
                if due(recorder.every):
                    own = _as_lists(recorder.record(state.run(s)))
                    runs.rows[s].setdefault(k, {}).update({key: value[0] for key, value in own.items()})

    def _record_final(self, runs: _Runs) -> None:
        """The row of the final iterate (every recorder records it) and its claim to be the best."""
        loss = self._losses(runs.size, runs.params, runs.X, runs.y).to("cpu", torch.float64)
        self._record(runs, self.config.steps, loss, None, final=True)
        self._keep_best(runs, self.config.steps, loss)

    def _results(self, runs: _Runs, start: float) -> list[TrainResult]:
        """Each run's iterates, curves and summary: the trainer's own keys (method, the iterates'
        losses, divergence, the optimisation gap) and the recorders' contributions."""
        S, cfg = runs.size, self.config
        losses = {name: self._split_losses(S, iterate, runs.X, runs.y, runs.Xv, runs.yv)
                  for name, iterate in (("last", runs.params), ("best", runs.best), ("average", runs.average))}
        gaps = self._gaps(runs, losses) if cfg.reference is not None else [None] * S
        wall_time = (time.perf_counter() - start) / S
        curves = [_curves(rows) for rows in runs.rows]
        finished = Finished(curves, runs.params, runs.theta0)
        parts = [recorder.summarise(finished) for recorder in runs.stacked]
        results = []
        for s in range(S):
            summary = self._core_summary(s, runs, losses, curves[s])
            own = [recorder.summarise(finished.run(s))[0] for recorder in runs.recorders[s]]
            for part in [p[s] for p in parts] + own:
                merge_summary(summary, part)
            summary.update(wall_time_s=wall_time, runs_stacked=S, **({} if gaps[s] is None else {"gap": gaps[s]}))
            results.append(TrainResult(last=run_slice(runs.params, s), best=run_slice(runs.best, s),
                                       average=run_slice(runs.average, s), curves=curves[s], summary=summary))
        return results

    def _core_summary(self, s: int, runs: _Runs, losses: dict[str, list[dict]], curves: pd.DataFrame) -> dict:
        """Run s's summary before the recorders add theirs (`max` is a section they fill)."""
        cfg = self.config
        return {"method": cfg.method, "steps_run": cfg.steps if runs.diverged_at[s] is None else runs.diverged_at[s],
                "lr": cfg.step_size, "loss": self.loss_kind, "last": losses["last"][s],
                "best": {**losses["best"][s], "step": int(runs.best_step[s])}, "average": losses["average"][s],
                "diverged_at": runs.diverged_at[s], "max": {},
                "min_val_loss": _min_val_loss(curves, first_step=0),
                "min_val_loss_trained": _min_val_loss(curves, first_step=1),
                "initial": _row_values(curves, 0), "final": _row_values(curves, -1)}

    def _gaps(self, runs: _Runs, losses: dict[str, list[dict]]) -> list[dict]:
        """The optimisation gap of every run against the backtracking reference (train/reference.py)."""
        final, best = ([losses[name][s]["train_loss"] for s in range(runs.size)] for name in ("last", "best"))
        return optimisation_gaps(self._loss_and_grad, self.config, self.radii, self.model.width, self.loss_kind,
                                 runs.params, runs.theta0, runs.X, runs.y, runs.active,
                                 torch.tensor(final, dtype=torch.float64), torch.tensor(best, dtype=torch.float64),
                                 runs.best_loss)

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
