"""The optimisation gap: a reference run reaches the minimum of the loss in the ball, on a convex
least-squares problem whose constrained minimum is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import TrainConfig
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model, Params
from attnlab.train.trainer import Trainer


class Linear(Model):
    """f(X) = w . x_T, one block w (1, d): a convex mean squared loss."""

    name = "linear"
    blocks = ("w",)
    radius_keys = {"w": "w"}

    def __init__(self, d: int):
        self.d, self.width = d, 1

    def init(self, seed: int, dtype=torch.float64, device="cpu") -> Params:
        return {"w": torch.zeros(1, self.d, dtype=dtype)}

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        return X[:, -1] @ params["w"][0]


def isotropic_problem(n=40, d=4, seed=0):
    """Queries x_T with X_T^T X_T / n = I and noisy targets: the loss is ||w - w_hat||^2 + const,
    so its minimum over ||w|| <= r is at r w_hat / ||w_hat|| when ||w_hat|| > r."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, d, generator=gen, dtype=torch.float64))
    XT = math.sqrt(n) * Q
    y = XT @ torch.tensor([3.0, -2.0, 1.0, 0.5], dtype=torch.float64) + 0.3 * torch.randn(n, generator=gen,
                                                                                         dtype=torch.float64)
    X = torch.stack([torch.zeros_like(XT), XT], dim=1)       # (n, 2, d): the query is the last token
    return Dataset(X, y, X[:0], y[:0])


def ball_minimum(data: Dataset, r: float) -> float:
    XT, y = data.X_train[:, -1], data.y_train
    w_hat = XT.T @ y / len(y)
    const = float((y**2).mean() - w_hat @ w_hat)
    return (max(float(w_hat.norm()) - r, 0.0))**2 + const


def train(data, r, steps, max_steps, tolerance=1e-10, window=10, runs=1, step_factor=10.0):
    """ProjGD (lr 0.1) for `steps`, then the reference (its first step, 1.0, overshoots this quadratic
    of curvature 2 and is refused; the halved step 0.5 lands on the minimiser)."""
    config = TrainConfig(method="projgd", steps=steps, lr=0.1, radius={"w": r, "u": "none", "c": "none"},
                         reference={"max_steps": max_steps, "tolerance": tolerance, "window": window,
                                    "step_factor": step_factor})
    model = Linear(4)
    trainer = Trainer(model, config)
    return trainer.fit_many([model.init(s) for s in range(runs)], [data] * runs, list(range(runs)))


@pytest.mark.parametrize("r", [0.5, 2.0, 10.0])   # minimum on the boundary (0.5, 2) or inside (10)
def test_reference_run_reaches_the_closed_form_minimum_in_the_ball(r):
    data = isotropic_problem()
    (result,) = train(data, r, steps=3, max_steps=2000)
    gap, best = result.summary["gap"], ball_minimum(data, r)
    assert gap["converged"] and 0 < gap["reference_steps"] < 2000
    assert gap["reference_loss"] == pytest.approx(best, rel=1e-7)
    assert gap["value"] == pytest.approx(result.summary["last"]["train_loss"] - best, rel=1e-6, abs=1e-9)
    assert gap["value"] >= 0
    assert (gap["value"] > 1e-9) == (r > 1)   # r = 0.5: the first training step lands on the minimiser
    zero = float((data.y_train**2).mean())
    assert gap["relative"] == pytest.approx(gap["value"] / zero)
    assert (gap["tolerance"], gap["window"], gap["max_steps"]) == (1e-10, 10, 2000)


def test_capped_reference_is_recorded_as_not_converged_and_bounds_the_minimum_from_above():
    data = isotropic_problem()
    (short,) = train(data, 2.0, steps=1, max_steps=2, step_factor=0.1)
    gap = short.summary["gap"]
    assert not gap["converged"]
    assert gap["reference_steps"] == 2 and gap["step_factor"] == 0.1
    assert gap["reference_loss"] >= ball_minimum(data, 2.0)
    (long,) = train(data, 2.0, steps=1, max_steps=2000)
    assert 0 <= gap["value"] < long.summary["gap"]["value"]


def test_stacked_runs_get_the_gap_of_a_single_run():
    data = isotropic_problem()
    single = train(data, 2.0, steps=3, max_steps=500)[0].summary["gap"]
    stacked = train(data, 2.0, steps=3, max_steps=500, runs=3)
    for result in stacked:
        assert result.summary["gap"]["reference_loss"] == pytest.approx(single["reference_loss"], rel=1e-12)
        assert result.summary["gap"]["reference_steps"] == single["reference_steps"]


def test_reference_needs_a_full_batch_method():
    with pytest.raises(ValueError, match="full-batch"):
        TrainConfig(method="projsgd", reference={"max_steps": 10})
