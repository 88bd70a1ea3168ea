"""E4's published statistics: block maxima of the sequence-weight gradient norm (per run, pooled
over runs as the authors' plotting script pools its appended per-step log) and the minimum
validation loss over the trained iterates 1..steps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from attnlab.config import DiagnosticsConfig, TrainConfig, parse_config
from attnlab.data.dataset import Dataset
from attnlab.data.sequences import ar_lag_data
from attnlab.models import IndRNN
from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.report.figures import pooled_block_statistics
from attnlab.run import train
from attnlab.train.gradient_norms import block_max_summary, block_maxima
from attnlab.train.recorders import build_recorders
from attnlab.train.trainer import Trainer

from test_trainer import Snapshots


def test_block_maxima_of_a_known_curve_with_a_partial_block_and_nans():
    steps = np.arange(13)                    # 0..11 trained, 12 the final iterate's row
    values = np.array([1, 5, 2, 0, 3,        # block 0: max 5
                       np.nan, 7, np.nan, 2, 2,   # block 1: NaNs skipped, max 7
                       9, 4,                 # block 2 (partial): max 9
                       100.0])               # step 12 = total_steps: left out
    maxima = block_maxima(steps, values, block=5, total_steps=12)
    np.testing.assert_array_equal(maxima, [5, 7, 9])
    summary = block_max_summary(maxima, 5)
    assert summary == {"mean": 7.0, "sd": pytest.approx(2.0), "count": 3, "block_steps": 5}
    # A block without a finite value gives no maximum (it is not counted).
    only_nan = np.where((steps >= 5) & (steps < 10), np.nan, values)
    np.testing.assert_array_equal(block_maxima(steps, only_nan, block=5, total_steps=12), [5, 9])
    assert math.isnan(block_max_summary(np.array([4.0]), 5)["sd"])
    assert block_max_summary(np.array([]), 5)["count"] == 0
    with pytest.raises(ValueError, match="block = 0"):
        block_maxima(steps, values, block=0, total_steps=12)


def _authors_pooled(series: pd.Series, block: int) -> tuple[float, float, float]:
    """The published computation, written out: cut the appended per-step series into consecutive
    blocks of `block` rows (the last possibly partial), take each block's maximum skipping NaNs,
    then the mean over all blocks with mean +- 1.96 sd (ddof 1) / sqrt(number of blocks)."""
    ids = np.arange(len(series)) // block
    maxima = series.reset_index(drop=True).groupby(ids).max().dropna()
    n = len(maxima)
    half = 1.96 * maxima.std(ddof=1) / math.sqrt(n)
    return float(maxima.mean()), float(maxima.mean() - half), float(maxima.mean() + half)


def test_runs_pooled_give_the_authors_number_on_their_appended_log():
    rng = np.random.default_rng(3)
    steps, block = 60, 20                  # steps a multiple of the block: blocks never straddle runs
    runs = []
    for seed in range(5):
        curve = rng.lognormal(mean=seed / 3, sigma=0.7, size=steps)
        curve[rng.integers(0, steps, size=4)] = np.nan
        runs.append(curve)
    summaries = pd.DataFrame([block_max_summary(block_maxima(np.arange(steps), c, block, steps), block)
                              for c in runs])
    pooled = pooled_block_statistics(summaries["mean"], summaries["sd"], summaries["count"])
    mean, low, high = _authors_pooled(pd.Series(np.concatenate(runs)), block)
    assert pooled["mean"] == pytest.approx(mean, rel=1e-12)
    assert pooled["low"] == pytest.approx(low, rel=1e-12) and pooled["high"] == pytest.approx(high, rel=1e-12)
    assert pooled["n"] == 15


def test_pooling_weights_runs_by_their_block_counts():
    """A run with fewer blocks (its last block partial, or a block of NaNs) counts for fewer."""
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0])
    parts = [block_max_summary(a, 5), block_max_summary(b, 5)]
    pooled = pooled_block_statistics([p["mean"] for p in parts], [p["sd"] for p in parts],
                                     [p["count"] for p in parts])
    every = np.concatenate([a, b])
    assert pooled["mean"] == pytest.approx(every.mean())
    assert pooled["sd"] == pytest.approx(every.std(ddof=1))


def test_the_recorder_cuts_the_gradient_of_each_iterate_before_its_step():
    """Row s holds the gradient at iterate s (the one step s is taken from), as the published log."""
    config = parse_config({"model": {"name": "indrnn", "m": 4}, "data": {"name": "ar-lag", "L": 3, "n": 60},
                           "train": {"method": "gd", "lr": 0.05, "steps": 10, "record_every": 1},
                           "diagnostics": {"record": {"block_max": 4}}, "dtype": "float64"})
    snapshots = Snapshots()
    result = train(config, recorders=[snapshots])
    data = ar_lag_data(L=3, seed=config.seed, n=60)
    model = IndRNN(d=data.d, m=4)
    norms = []
    for step in range(10):
        _, grads = model.loss_and_grad(snapshots.iterates[step], data.X_train, data.y_train, "mse")
        norms.append(float(grads["u"].norm()))
    maxima = [max(norms[0:4]), max(norms[4:8]), max(norms[8:10])]
    summary = result.summary["sequence_grad_block_max"]
    assert summary["count"] == 3 and summary["block_steps"] == 4
    assert summary["mean"] == pytest.approx(np.mean(maxima), rel=1e-10)
    assert summary["sd"] == pytest.approx(np.std(maxima, ddof=1), rel=1e-8)


def test_the_block_recorder_needs_a_sequence_block():
    X = torch.randn(6, 3, 4, dtype=torch.float64)
    model = ShallowEncoder(d=4, T=3, d_m=8)
    data = Dataset(X, torch.zeros(6, dtype=torch.float64), X[:0], torch.zeros(0))
    with pytest.raises(ValueError, match=r"diagnostics\.record\.block_max: model 'shallow-encoder' has no "
                                         r"sequence block.*remove diagnostics\.record\.block_max"):
        build_recorders(DiagnosticsConfig(record={"block_max": 5}), model, model.init(0, dtype=torch.float64), data)


def test_min_val_loss_trained_leaves_out_the_initialisation():
    """A step size large enough to make the first step worse: the initialisation has the lowest
    validation loss, which min_val_loss counts and min_val_loss_trained (iterates 1..steps) does not."""
    data = ar_lag_data(L=2, seed=0, n=80)
    model = IndRNN(d=data.d, m=4)
    params0 = model.init(0, dtype=torch.float64)
    snapshots = Snapshots()
    steps = 4
    result = Trainer(model, TrainConfig(method="gd", steps=steps, lr=3.0, record_every=1),
                     recorders=[snapshots]).fit(params0, data)
    final = result.last
    iterates = [snapshots.iterates[k] for k in range(steps)] + [final]
    val = [float(torch.mean((model(p, data.X_val) - data.y_val) ** 2)) for p in iterates]
    assert val[0] < min(val[1:])                                     # the case that tells them apart
    assert result.summary["min_val_loss"] == pytest.approx(min(val), rel=1e-10)
    assert result.summary["min_val_loss_trained"] == pytest.approx(min(val[1:]), rel=1e-10)
