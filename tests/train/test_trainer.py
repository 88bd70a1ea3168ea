import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.config import TrainConfig
from attnlab.data.dataset import Dataset
from attnlab.data.teacher import teacher_data
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.recorder import RunRecorder
from attnlab.train.projection import head_distances, project
from attnlab.train.trainer import Trainer


def tiny_data(n=40, T=5, d=4, seed=0):
    return teacher_data(n, T, d, seed, K=64, anchors=4)


class Snapshots(RunRecorder):
    """Recorder keeping a copy of every iterate."""

    every = 1

    def __init__(self):
        self.iterates = {}

    def __call__(self, step, params):
        self.iterates[step] = {k: v.clone() for k, v in params.items()}
        return {}


radius = st.one_of(st.just("none"), st.floats(0.0, 4.0))


@given(m=st.sampled_from([2, 4, 10]), rc=radius, ru=radius, rw=radius,
       steps=st.integers(1, 12), lr=st.floats(0.05, 20.0), method=st.sampled_from(["projgd", "projsgd"]))
def test_every_iterate_stays_in_its_balls(m, rc, ru, rw, steps, lr, method):
    data = tiny_data().to(torch.float64)
    model = KernelTransformer(d=4, m=m)
    params0 = model.init(0, torch.float64)
    cfg = TrainConfig(method=method, steps=steps, lr=lr, batch_size=3, radius={"c": rc, "u": ru, "w": rw})
    snaps = Snapshots()
    Trainer(model, cfg, recorders=[snaps]).fit(params0, data)
    for params in snaps.iterates.values():
        for block, rho in (("c", rc), ("U", ru), ("W", rw)):
            if rho != "none":
                limit = rho / math.sqrt(m)
                assert head_distances(params, params0, block).max() <= limit * (1 + 1e-12) + 1e-15


def test_radius_none_leaves_a_block_free():
    data = tiny_data().to(torch.float64)
    model = KernelTransformer(d=4, m=4)
    params0 = model.init(0, torch.float64)
    cfg = TrainConfig(steps=20, lr=50.0, radius={"c": 0.01, "u": "none", "w": 0.01})
    result = Trainer(model, cfg).fit(params0, data)
    assert head_distances(result.last, params0, "U").max() > 0.01 / 2 * 10
    assert head_distances(result.last, params0, "W").max() <= 0.01 / 2 * (1 + 1e-12)


def test_projection_is_the_identity_inside_and_radial_outside():
    centres = {"W": torch.zeros(2, 3, 3, dtype=torch.float64)}
    inside = {"W": torch.full((2, 3, 3), 0.01, dtype=torch.float64)}
    assert torch.equal(project(inside, centres, {"W": 1.0}, 4)["W"], inside["W"])
    outside = {"W": torch.ones(2, 3, 3, dtype=torch.float64)}
    projected = project(outside, centres, {"W": 1.0}, 4)["W"]
    torch.testing.assert_close(projected.flatten(1).norm(dim=1), torch.full((2,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(projected / projected.norm(), outside["W"] / outside["W"].norm())


def test_averaged_iterate_is_the_mean_of_the_iterates():
    data = tiny_data().to(torch.float64)
    model = KernelTransformer(d=4, m=6)
    snaps = Snapshots()
    result = Trainer(model, TrainConfig(steps=15, lr=0.5), recorders=[snaps]).fit(model.init(1, torch.float64), data)
    for name in model.blocks:
        mean = torch.stack([snaps.iterates[k][name] for k in range(15)]).mean(0)
        torch.testing.assert_close(result.average[name], mean, rtol=1e-12, atol=1e-14)


def test_best_iterate_has_the_lowest_training_loss_and_last_is_final():
    data = tiny_data().to(torch.float64)
    model = KernelTransformer(d=4, m=6)
    trainer = Trainer(model, TrainConfig(steps=30, lr=1.0, record_every=1))
    result = trainer.fit(model.init(1, torch.float64), data)
    curve = result.curves.set_index("step")["train_loss"]
    assert result.summary["best"]["train_loss"] == pytest.approx(curve.min(), rel=1e-12)
    assert result.summary["last"]["train_loss"] == pytest.approx(curve[30], rel=1e-12)
    assert result.summary["average"]["train_loss"] == pytest.approx(
        trainer.loss(result.average, data.X_train, data.y_train))


def test_training_reduces_the_loss_and_records_curves():
    data = tiny_data(n=200).to(torch.float64)
    model = KernelTransformer(d=4, m=32)
    result = Trainer(model, TrainConfig(steps=200, lr=2.0, record_every=10)).fit(model.init(0, torch.float64), data)
    curves = result.curves
    assert list(curves["step"]) == list(range(0, 201, 10))
    assert curves["train_loss"].iloc[-1] < 0.5 * curves["train_loss"].iloc[0]
    for name in model.blocks:
        assert {f"grad_norm_{name}", f"dist_{name}"} <= set(curves.columns)
    assert curves["dist_W"].iloc[0] == 0


def test_divergence_is_recorded_not_raised():
    X = torch.randn(10, 3, 2, dtype=torch.float64)
    data = Dataset(X, 1e3 * torch.ones(10, dtype=torch.float64), X[:0], torch.ones(0, dtype=torch.float64))
    model = KernelTransformer(d=2, m=2, paired=False)
    result = Trainer(model, TrainConfig(method="gd", steps=50, lr=1e12)).fit(model.init(0, torch.float64), data)
    assert result.summary["diverged_at"] is not None


@pytest.mark.parametrize("S", [1, 3])
def test_iterates_written_into_reused_memory_match_a_plain_loop_bitwise(S):
    """The trainer writes a step into the memory of an iterate it no longer holds (the best one given
    up, or the last one when it is not the best): on a loss that rises and falls, every iterate, and
    after every number of steps the last and best iterates and the running mean, are bitwise those
    of theta - eta * grad computed afresh."""
    data = tiny_data().to(torch.float64)
    model = KernelTransformer(d=4, m=6)
    starts = [model.init(seed, torch.float64) for seed in range(S)]
    rose = False
    for steps in range(1, 26):
        cfg = TrainConfig(method="gd", steps=steps, lr=12.0, record_every=1)
        snaps = [Snapshots() for _ in range(S)]
        results = Trainer(model, cfg).fit_many(starts, [data] * S, list(range(S)), [[r] for r in snaps])
        for params, snap, result in zip(starts, snaps, results):
            rose |= bool((result.curves["train_loss"].diff() > 0).any())
            mean, best, best_loss = params, params, math.inf
            for k in range(steps + 1):
                assert all(torch.equal(snap.iterates[k][n], params[n]) for n in params), (steps, k)
                loss, grads = model.loss_and_grad(params, data.X_train, data.y_train)
                if float(loss) < best_loss:
                    best, best_loss = params, float(loss)
                if k < steps:
                    mean = {n: mean[n] + (params[n] - mean[n]) / (k + 1) for n in params}
                    params = {n: params[n] - cfg.step_size * grads[n] for n in params}
            assert all(torch.equal(result.last[n], params[n]) for n in params)
            assert all(torch.equal(result.average[n], mean[n]) for n in params)
            assert all(torch.equal(result.best[n], best[n]) for n in params), steps
    assert rose                                                     # the best was given up at some step
