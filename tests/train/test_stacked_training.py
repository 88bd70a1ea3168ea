"""Runs that differ only by seed, trained as one stacked computation."""

import math

import pandas as pd
import pytest
import torch

from attnlab.config import TrainConfig, parse_config
from attnlab.data.dataset import Dataset
from attnlab.data.teacher import teacher_data
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.run import run, run_many, stack_size, train, train_many
from attnlab.run import open_store
from attnlab.train.stacking import Stacked, run_slice, stack
from attnlab.train.trainer import Trainer

from test_trainer import Snapshots


def datasets(seeds, dtype=torch.float64):
    return [teacher_data(60, 5, 4, seed, K=64, anchors=4).to(dtype) for seed in seeds]


@pytest.mark.parametrize("method", ["projgd", "projsgd", "gd"])
def test_each_stacked_run_matches_its_own_fit(method):
    model = KernelTransformer(d=4, m=6)
    seeds = [0, 1, 2]
    config = TrainConfig(method=method, steps=25, lr=0.8, radius=1.0, batch_size=7, record_every=3)
    trainer = Trainer(model, config)
    params0 = [model.init(s, torch.float64) for s in seeds]
    data = datasets(seeds)
    stacked = trainer.fit_many(params0, data, seeds)
    for s, result in enumerate(stacked):
        alone = Trainer(model, config, seed=seeds[s]).fit(params0[s], data[s])
        pd.testing.assert_frame_equal(result.curves, alone.curves, rtol=1e-10, atol=1e-12)
        for name in ("last", "best", "average"):
            for block in model.blocks:
                torch.testing.assert_close(getattr(result, name)[block], getattr(alone, name)[block],
                                           rtol=1e-10, atol=1e-12)
        assert result.summary["best"]["step"] == alone.summary["best"]["step"]
        assert result.summary["runs_stacked"] == 3


def test_stacked_average_is_the_mean_of_each_runs_iterates():
    model = KernelTransformer(d=4, m=4)
    snaps = [Snapshots(), Snapshots()]
    config = TrainConfig(steps=10, lr=0.5)
    results = Trainer(model, config).fit_many([model.init(s, torch.float64) for s in (3, 4)], datasets((3, 4)),
                                               [3, 4], [[snaps[0]], [snaps[1]]])
    for result, snap in zip(results, snaps):
        for block in model.blocks:
            mean = torch.stack([snap.iterates[k][block] for k in range(10)]).mean(0)
            torch.testing.assert_close(result.average[block], mean, rtol=1e-12, atol=1e-12)


def test_a_diverging_run_stops_while_the_others_go_on():
    model = KernelTransformer(d=4, m=4)
    data = datasets((0, 1))
    flat = data[1]   # zero labels: the paired initialisation fits them exactly and never moves
    data[1] = Dataset(flat.X_train, torch.zeros_like(flat.y_train), flat.X_val, torch.zeros_like(flat.y_val))
    config = TrainConfig(method="gd", steps=30, lr=1e12)
    diverging, steady = Trainer(model, config).fit_many([model.init(s, torch.float64) for s in (0, 1)], data, [0, 1])
    assert diverging.summary["diverged_at"] is not None
    assert diverging.summary["steps_run"] == diverging.summary["diverged_at"] < 30
    assert steady.summary["diverged_at"] is None and steady.summary["steps_run"] == 30
    assert steady.curves["step"].max() == 30 and steady.summary["last"]["train_loss"] == 0.0


def test_stacked_training_is_bit_reproducible():
    base = {"model": {"m": 8}, "data": {"n": 80, "T": 4, "d": 4, "K": 64}, "train": {"steps": 15, "record_every": 1}}
    configs = [parse_config({**base, "seed": s}) for s in range(3)]
    first, second = train_many(configs), train_many(configs)
    for a, b in zip(first, second):
        pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)


def test_run_many_writes_every_run_and_reuses_them(tmp_path):
    base = {"model": {"m": 4}, "data": {"n": 50, "T": 3, "d": 3, "K": 32}, "train": {"steps": 6}}
    configs = [parse_config({**base, "seed": s}) for s in range(4)]
    paths = run_many(configs, tmp_path)
    assert all((p / "summary.json").exists() for p in paths)
    stamps = [(p / "summary.json").stat().st_mtime_ns for p in paths]
    assert run_many(configs, tmp_path) == paths
    assert [(p / "summary.json").stat().st_mtime_ns for p in paths] == stamps
    alone = train(configs[2]).curves
    stored = pd.read_parquet(open_store(tmp_path).path(configs[2]) / "curves.parquet")
    pd.testing.assert_frame_equal(stored, alone, rtol=1e-5, atol=1e-7)


def test_train_many_refuses_configs_that_differ_by_more_than_seed():
    configs = [parse_config({"model": {"m": 4}, "seed": 0}), parse_config({"model": {"m": 6}, "seed": 1})]
    with pytest.raises(ValueError, match="differ only by seed"):
        train_many(configs)


def test_stacked_falls_back_to_a_loop_for_functions_vmap_cannot_take():
    def not_vmappable(x):
        return torch.tensor(float(x.sum()))   # .item()-style control flow breaks vmap
    stacked = Stacked(not_vmappable)
    out = stacked(3, torch.arange(6.0).reshape(3, 2))
    assert stacked.vectorised is False
    assert out.tolist() == [1.0, 5.0, 9.0]
    assert run_slice(stack([{"a": torch.ones(2)}, {"a": torch.zeros(2)}]), 1)["a"].tolist() == [0.0, 0.0]





def test_stack_size_stacks_small_cpu_runs_and_fills_a_gpu():
    small = parse_config({"model": {"m": 8}, "data": {"n": 1000, "T": 16}})
    large = parse_config({"model": {"m": 256}, "data": {"n": 5000, "T": 16}})
    assert stack_size(small, 10) == 10
    assert stack_size(large, 10) == 1
    gpu = large.model_copy(update={"device": "cuda"})
    assert stack_size(gpu, 10, memory_bytes=2**40) == 10
    assert stack_size(gpu, 10, memory_bytes=2 * 8 * 4000 * 16 * 256 * 4) == 2


@pytest.mark.filterwarnings("error::UserWarning")   # a vmap fallback ("performance drop") fails
@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_indrnn_pytorch_path_vmaps_over_stacked_runs(activation):
    """On CUDA (and without the fused kernel) stacked IndRNN runs go through torch.func.vmap, not a
    Python loop over the runs: its PyTorch formulation must avoid out= operations, which vmap
    refuses, and in-place ones vmap runs through its slow per-run fallback."""
    from attnlab.models.indrnn import IndRNN

    model = IndRNN(d=3, m=6, activation_name=activation, gain=0.9, fused=False)
    S = 3
    params = stack([model.init(s, torch.float64) for s in range(S)])
    X = torch.randn(S, 7, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / 2
    y = torch.randn(S, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    step = Stacked(model.loss_and_grad, shared=(3,))
    forward = Stacked(lambda p, X: model(p, X))
    loss, grads = step(S, params, X, y, "mse")
    with torch.no_grad():
        outputs = forward(S, params, X)
    assert step.vectorised is True and forward.vectorised is True
    for s in range(S):
        alone_loss, alone_grads = model.loss_and_grad(run_slice(params, s), X[s], y[s])
        torch.testing.assert_close(loss[s], alone_loss, rtol=1e-12, atol=1e-14)
        for block in model.blocks:
            torch.testing.assert_close(grads[block][s], alone_grads[block], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(outputs[s], model(run_slice(params, s), X[s]), rtol=1e-12, atol=1e-14)


def test_a_gpu_stacks_as_many_seeds_as_half_its_memory_holds_in_equal_chunks(monkeypatch):
    """E5 at T = 1024 (one run's (n_train, T, m) array is 1 GiB): a 4 GiB budget stacked no seeds at
    all; on a GPU the budget is half its memory, and the seeds are split into equal chunks."""
    import attnlab.run as run_module

    class Properties:
        total_memory = 140 * 2**30
    monkeypatch.setattr(run_module.torch.cuda, "get_device_properties", lambda device: Properties())
    e5 = parse_config({"model": {"m": 64}, "data": {"n": 5000, "T": 1024, "d": 8}, "device": "cuda"})
    per_run = 4000 * 1024 * 64 * 4
    assert run_module.stack_memory_bytes("cuda") == 70 * 2**30
    assert stack_size(e5, 10) == 5            # 70 GiB hold 8 runs of 8 such arrays: chunks of 5 and 5
    assert stack_size(e5, 10, memory_bytes=8 * per_run * 3) == 3     # 4 chunks either way
    assert stack_size(e5, 8) == 8
