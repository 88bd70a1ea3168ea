"""The one recorder interface, and what a recorder sees of training.

A recorder measures S runs trained together (a run's own recorders: S = 1). Every `every` steps
(None: never) the trainer calls `record(StepState)`, which returns curve columns with one value
per run; after training it calls `summarise(Finished)`, which returns one dict of summary keys
per run. A StepState's tensors belong to the trainer, which writes later iterates into their
memory: a recorder computes what it needs during the call and clones what it keeps. `RunRecorder`
is the recorder of one run's iterate: it measures with `__call__(step, params)` and summarises that
run's curves with `summarise_run(curves)`.

Named recorders are registered in attnlab.train.recorders; this module sits on the ground floor
(torch and pandas only), so that the NTK engine and the trainer can both implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import torch

Params = dict[str, torch.Tensor]


def _run(blocks: Params, s: int) -> Params:
    """Run s of stacked blocks (S, ...) as a stack of one: blocks (1, ...)."""
    return {name: block[s:s + 1] for name, block in blocks.items()}


@dataclass
class StepState:
    """The S stacked runs at `step`: iterate and initialisation (blocks (S, ...)), and the gradient
    of the step taken (None for the row of the final iterate)."""

    step: int
    params: Params
    theta0: Params
    grads: Params | None

    def run(self, s: int) -> StepState:
        """The state of run s alone (blocks (1, ...))."""
        return StepState(self.step, _run(self.params, s), _run(self.theta0, s),
                         None if self.grads is None else _run(self.grads, s))


@dataclass
class Finished:
    """The S stacked runs after training: each run's curves and the last iterates (S, ...)."""

    curves: list[pd.DataFrame]
    last: Params
    theta0: Params

    def run(self, s: int) -> Finished:
        """Run s alone (its curves; blocks (1, ...))."""
        return Finished([self.curves[s]], _run(self.last, s), _run(self.theta0, s))


class Recorder:
    """Measures S runs at once. `every`: steps between its rows (None: it only summarises)."""

    every: int | None = None

    def record(self, state: StepState) -> dict[str, torch.Tensor | Sequence[float]]:
        """Curve columns at state.step: each (S,), one value per run."""
        return {}

    def summarise(self, finished: Finished) -> list[dict[str, Any]]:
        """Summary keys from the finished runs: one dict per run (sections such as `max` are merged
        with those of other recorders)."""
        return [{} for _ in finished.curves]


class RunRecorder(Recorder):
    """Measures one run: `__call__(step, params)` on its iterate (the run's own blocks) returns
    {column: float}; `summarise_run(curves)` returns its summary keys."""

    def __call__(self, step: int, params: Params) -> dict[str, float]:
        return {}

    def summarise_run(self, curves: pd.DataFrame) -> dict[str, Any]:
        return {}

    def record(self, state: StepState) -> dict[str, Sequence[float]]:
        if len(next(iter(state.params.values()))) != 1:
            raise ValueError(f"{type(self).__name__} measures one run; give it StepState.run(s)")
        row = self(state.step, {name: block[0] for name, block in state.params.items()})
        return {column: [value] for column, value in row.items()}

    def summarise(self, finished: Finished) -> list[dict[str, Any]]:
        return [self.summarise_run(curves) for curves in finished.curves]


def switch_off(field: str) -> str:
    """How to turn off the recorder a config field asks for, for error messages."""
    return f"remove {field}" if ".record." in field else f"set {field}: null"
