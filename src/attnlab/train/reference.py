"""The reference of the optimisation gap: the lowest training loss found in the run's balls.

The gap of a run is its training loss after the run minus the lowest loss of a reference run
(TrainConfig.reference) in the same balls. The reference is projected gradient descent onto the
balls around theta_0 from the last iterate, with backtracking: the step starts at step_factor times
the training step, a step that does not lower the loss is refused and the step halved. It stops
when the loss changed by less than `tolerance` (relative) over the last `window` steps, or after
`max_steps`. Every point it visits lies in the ball, so its lowest loss (and the run's own best)
estimates the ball's minimum from above, and the gap from below.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from attnlab.config import TrainConfig
from attnlab.models.base import Params
from attnlab.models.losses import squared_loss
from attnlab.train.projection import project
from attnlab.train.stacking import select

# (S, params (S, ...), X (S, n, T, d), y (S, n), loss kind) -> (loss (S,), gradients (S, ...))
LossAndGrad = Callable[[int, Params, torch.Tensor, torch.Tensor, str], tuple[torch.Tensor, Params]]


def optimisation_gaps(loss_and_grad: LossAndGrad, config: TrainConfig, radii: dict[str, float | None], width: int,
                      loss_kind: str, params: Params, theta0: Params, X: torch.Tensor, y: torch.Tensor,
                      finished: torch.Tensor, final: torch.Tensor, best: torch.Tensor,
                      best_loss: torch.Tensor) -> list[dict]:
    """The optimisation gap of each of S stacked runs, with how the reference was obtained.

    params, theta0: last iterates and initialisations (S, ...); X, y: training data (S, n, ...);
    finished: runs that did not diverge (S,); final, best: training loss of the last and the best
    iterate (S,); best_loss: the lowest loss each run recorded (S,). One dict per run."""
    ref = config.reference
    S = len(final)
    running = finished.clone() & torch.isfinite(final)
    converged = torch.zeros(S, dtype=torch.bool)
    steps = torch.zeros(S, dtype=torch.long)
    step = torch.full((S,), config.step_size * ref.step_factor, dtype=torch.float64)
    current = params
    loss, grads = loss_and_grad(S, current, X, y, loss_kind)
    loss = loss.detach().to("cpu", torch.float64)
    history = [loss]
    for _ in range(ref.max_steps):
        if not running.any():
            break
        eta = step.to(X.device, X.dtype)
        candidate = project({n: current[n] - eta.reshape(-1, *(1,) * (g.dim() - 1)) * g
                             for n, g in grads.items()}, theta0, radii, width, batch_dims=1)
        new_loss, new_grads = loss_and_grad(S, candidate, X, y, loss_kind)
        new_loss = new_loss.detach().to("cpu", torch.float64)
        accept = running & torch.isfinite(new_loss) & (new_loss < loss)
        current = select(accept, candidate, current)
        grads = select(accept, new_grads, grads)
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
        zero = float(squared_loss(torch.zeros_like(y[s]), y[s], loss_kind))   # loss at init
        value = float(final[s] - lowest[s]) if bool(finished[s]) else math.nan
        gaps.append({"value": value, "relative": value / zero if zero > 0 else math.nan,
                     "best": float(best[s] - lowest[s]) if bool(finished[s]) else math.nan,
                     "reference_loss": float(lowest[s]), "reference_steps": int(steps[s]),
                     "converged": bool(converged[s]), "tolerance": ref.tolerance, "window": ref.window,
                     "max_steps": ref.max_steps, "step_factor": ref.step_factor,
                     "how": "ProjGD with backtracking from the last iterate, in the same balls"})
    return gaps
