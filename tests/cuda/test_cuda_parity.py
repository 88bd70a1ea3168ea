"""CUDA against the CPU in float64: models, NTKs, trainers, stacked seeds and memory (see conftest.py:
`target` is the GPU, or the CPU taking the GPU's path)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from attnlab.config import TrainConfig, parse_config
from attnlab.data.teacher import random_sequences, teacher_data
from attnlab.models.indrnn import IndRNN
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.ntk import empirical
from attnlab.run import _activation_bytes, train, train_many
from attnlab.train.memory import peak_memory_bytes, training_step_peak_memory
from attnlab.train.stacking import Stacked, stack
from attnlab.train.trainer import Trainer

from cuda_targets import Target, move

F64 = torch.float64
CLOSE = {"rtol": 1e-10, "atol": 1e-12}     # one pass: different summation orders only
TRAINED = {"rtol": 1e-8, "atol": 1e-11}    # 20 steps amplify those a little

MODELS = {
    "kernel-transformer": lambda: KernelTransformer(d=4, m=6),
    "kernel-transformer sdpa": lambda: KernelTransformer(d=4, m=6, sdpa=True),
    "indrnn": lambda: IndRNN(d=4, m=6, gain=0.9),
    "shallow-encoder": lambda: ShallowEncoder(d=4, T=5, d_m=8),
}


def problem(seed: int = 0, n: int = 9):
    X = random_sequences(n, 5, 4, seed)
    y = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    return X, y


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_loss_and_grad(target, name):
    model = MODELS[name]()
    params, (X, y) = model.init(3, F64), problem()
    f = model(params, X)
    loss, grads = model.loss_and_grad(params, X, y, model.default_loss)
    with target.path():
        p, Xd, yd = target.put((params, X, y))
        f_target = model(p, Xd)
        loss_target, grads_target = model.loss_and_grad(p, Xd, yd, model.default_loss)
    assert f_target.device.type == torch.device(target.device).type
    torch.testing.assert_close(f_target.cpu(), f, **CLOSE)
    torch.testing.assert_close(loss_target.cpu(), loss, **CLOSE)
    for block in model.blocks:
        assert grads_target[block].device.type == f_target.device.type
        torch.testing.assert_close(grads_target[block].cpu(), grads[block], **CLOSE)


@pytest.mark.parametrize("name", MODELS)
def test_ntk(target, name):
    model = MODELS[name]()
    params, (X, _) = model.init(1, F64), problem(n=7)
    X2 = problem(seed=5, n=4)[0]
    reference = empirical(model, X, X2, params=params, dtype=F64)
    with target.path():
        got = empirical(model, *target.put((X, X2)), params=target.put(params), dtype=F64)
    assert got.method == reference.method
    torch.testing.assert_close(got.total.cpu(), reference.total, **CLOSE)
    for block, kernel in reference.blocks.items():
        torch.testing.assert_close(got.blocks[block].cpu(), kernel, **CLOSE)


@pytest.mark.filterwarnings("error::UserWarning")   # vmap's slow per-run fallback warns
@pytest.mark.parametrize("name", MODELS)
def test_stacked_steps_are_vectorised(target, name):
    """The trainer's stacked loss, gradient and forward go through vmap, not a loop over the runs."""
    model = MODELS[name]()
    S, (X, y) = 3, problem()
    with target.path():
        params, Xs, ys = target.put((stack([model.init(s, F64) for s in range(S)]), stack([X] * S), stack([y] * S)))
        step, forward = Stacked(model.loss_and_grad, shared=(3,)), Stacked(lambda p, X: model(p, X))
        step(S, params, Xs, ys, model.default_loss)
        with torch.no_grad():
            forward(S, params, Xs)
    assert step.vectorised is True and forward.vectorised is True


def assert_same_training(got, reference, blocks, tolerance=TRAINED):
    pd.testing.assert_frame_equal(got.curves, reference.curves, **tolerance)
    for iterate in ("last", "best", "average"):
        for block in blocks:
            torch.testing.assert_close(getattr(got, iterate)[block].cpu(), getattr(reference, iterate)[block].cpu(),
                                       **tolerance)


@pytest.mark.parametrize("method", ["projgd", "projsgd"])
@pytest.mark.parametrize("name", ["kernel-transformer", "indrnn"])
def test_projected_training_over_20_steps(target, method, name):
    model = MODELS[name]()
    config = TrainConfig(method=method, steps=20, lr=0.5, radius=1.0, batch_size=4, record_every=2)
    params0, data = model.init(2, F64), teacher_data(30, 5, 4, 2, K=64, anchors=4)
    reference = Trainer(model, config, seed=2).fit(params0, data)
    with target.path():
        got = Trainer(model, config, seed=2).fit(target.put(params0), data.to(device=target.device))
    assert got.last[model.blocks[0]].device.type == torch.device(target.device).type
    assert_same_training(got, reference, model.blocks)


def small_config(kind: str, device: str, seed: int = 0):
    """Paper presets' configs at toy sizes: E5 (teacher, ProjGD, reference, smoothness, ball), E7
    (lag task, IndRNN, reference, smoothness) and W5 (digits, encoder, accuracy diagnostics)."""
    raw = {
        "E5": {"model": {"m": 6}, "data": {"n": 30, "T": 6, "d": 4, "K": 64},
               "train": {"method": "projgd", "steps": 10, "radius": 3,
                         "reference": {"max_steps": 10, "tolerance": 1e-3, "window": 5}},
               "diagnostics": {"record": {"smoothness": 5, "ball": 5}}},
        "E7": {"model": {"name": "indrnn", "m": 6, "gain": 0.9},
               "data": {"name": "ar-lag", "L": 5, "n": 40, "clip_tokens": True},
               "train": {"method": "projgd", "steps": 10, "radius": 3, "record_every": 1,
                         "reference": {"max_steps": 10, "tolerance": 1e-3, "window": 5}},
               "diagnostics": {"record": {"smoothness": 5}}},
        "W5": {"model": {"name": "shallow-encoder", "d_m": 8, "phi": "flatten", "init": "lecun",
                         "outputs": "auto"},
               "data": {"name": "digits", "n": 40, "patch": 4},
               "train": {"method": "gd", "lr": 0.25, "steps": 10}, "diagnostics": {"record": {"attention": 5, "weight_change": 5}}},
    }[kind]
    return parse_config({**raw, "dtype": "float64", "device": device, "seed": seed})


def summary_numbers(summary: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a run summary (wall times, versions and ids left out)."""
    numbers = {}
    for key, value in summary.items():
        if key in ("wall_time_s", "versions", "run_id"):
            continue
        if isinstance(value, dict):
            numbers.update(summary_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            numbers[f"{prefix}{key}"] = float(value)
    return numbers


@pytest.mark.parametrize("kind", ["E5", "E7", "W5"])
def test_a_run_on_the_target_matches_the_cpu_run(target, kind):
    """A whole run (data, recorders, reference, summary); the teacher's float32 labels are computed on
    the run's device, so E5's numbers agree to float32 rounding of the labels."""
    reference = train(small_config(kind, "cpu"))
    with target.path():
        got = train(small_config(kind, target.device))
    tolerance = {"rtol": 1e-5, "atol": 1e-8} if kind == "E5" else TRAINED
    pd.testing.assert_frame_equal(got.curves, reference.curves, **tolerance)
    expected, numbers = summary_numbers(reference.summary), summary_numbers(got.summary)
    assert numbers.keys() == expected.keys()
    for key, value in expected.items():
        assert numbers[key] == pytest.approx(value, rel=tolerance["rtol"], abs=tolerance["atol"]), key


@pytest.mark.parametrize("kind", ["E5", "E7", "W5"])
def test_stacked_seeds_match_separate_runs(target, kind):
    configs = [small_config(kind, target.device, seed) for seed in (0, 1, 2)]
    with target.path():
        stacked = train_many(configs)
        alone = [train(config) for config in configs]
    assert all(result.summary["runs_stacked"] == 3 for result in stacked)
    for got, reference in zip(stacked, alone):
        assert_same_training(got, reference, list(reference.last))


def test_teacher_labels_on_the_target_match_the_cpu(target):
    from attnlab.data.teacher import teacher_problem

    _, y, _ = teacher_problem(50, 7, 4, 0, K=256)
    _, y_target, _ = teacher_problem(50, 7, 4, 0, K=256, device=target.device)
    assert y_target.device.type == "cpu" and y_target.dtype == F64
    torch.testing.assert_close(y_target, y, rtol=1e-5, atol=1e-7)   # float32 terms, float64 sums


MEMORY_SIZES = {"B": 1000, "T": 32, "d": 8, "m": 64}
SLACK = 16 * 2**20      # the allocator's rounding and cuBLAS's workspace


def memory_problem(name: str):
    B, T, d, m = MEMORY_SIZES.values()
    model = KernelTransformer(d=d, m=m) if name == "kernel-transformer" else IndRNN(d=d, m=m, gain=0.9)
    X = random_sequences(B, T, d, 0)
    y = torch.randn(B, generator=torch.Generator().manual_seed(0), dtype=F64)
    return model, X, y, B * T * m * 8    # one (B, T, m) float64 activation array


@pytest.mark.parametrize("name", ["kernel-transformer", "indrnn"])
def test_training_step_memory_is_within_the_stacking_estimate(target, name):
    """One training step on the CUDA path needs at most the 8 (n, T, width) arrays per run that
    stack_size budgets (attnlab.run), for one run and for 3 stacked as the trainer stacks them; on CUDA the
    allocator's peak agrees with what the CPU's live-storage tracker measures for the same path."""
    model, X, y, activation = memory_problem(name)
    params = model.init(0, F64)
    with target.path():
        p, Xd, yd = target.put((params, X, y))
        one = training_step_peak_memory(model, p, Xd, yd)
        S = 3
        ps, Xs, ys = stack([p] * S), stack([Xd] * S), stack([yd] * S)
        step = Stacked(model.loss_and_grad, shared=(3,),    # as the trainer stacks runs
                       batched=model.loss_and_grad_runs if model.has_run_axis else None)
        stacked = peak_memory_bytes(lambda: step(S, ps, Xs, ys, "mse"), target.device,
                                    inputs=[Xs, ys, *ps.values()])
    assert step.vectorised is True
    assert 0 < one <= 8 * activation + SLACK
    assert 0 < stacked <= S * 8 * activation + SLACK
    if target.device == "cuda":
        with mock_standin():
            on_cpu = training_step_peak_memory(model, params, X, y)
        assert 0.5 * on_cpu - SLACK <= one <= 2 * on_cpu + SLACK, (one, on_cpu)


def mock_standin():
    return Target("cpu-standin", "cpu").path()


def test_the_activation_estimate_is_the_runs_array(target):
    config = parse_config({"model": {"m": 64}, "data": {"n": 1250, "T": 32, "d": 8}, "dtype": "float64",
                           "device": target.device})
    assert _activation_bytes(config) == 1000 * 32 * 64 * 8
    assert move(torch.ones(1), target.device).device.type == torch.device(target.device).type
