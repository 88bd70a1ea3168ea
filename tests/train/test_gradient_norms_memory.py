"""Gradient-norm windows and recorder (E4) and peak-memory measurement."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import RunConfig, TrainConfig
from attnlab.data.sequences import ar_lag_data
from attnlab.models import IndRNN, KernelTransformer
from attnlab.run import measure
from attnlab.train.gradient_norms import GradientNormRecorder, sequence_block, window_max_mean
from attnlab.train.memory import peak_memory_bytes, training_step_peak_memory
from attnlab.train.trainer import Trainer


def test_window_max_mean():
    steps = list(range(10))
    values = [1, 5, 2, 0, 3, 1, 7, 2, 2, 9]
    # windows of 4: {0..3} max 5, {4..7} max 7, {8, 9} max 9
    assert window_max_mean(steps, values, window=4) == pytest.approx(7.0)
    assert window_max_mean(steps, values, window=4, total_steps=8) == pytest.approx(6.0)
    assert window_max_mean(steps, [math.nan] * 3 + values[3:], window=4) == pytest.approx((0 + 7 + 9) / 3)
    assert math.isnan(window_max_mean([], [], window=4))
    with pytest.raises(ValueError, match="window = 0"):
        window_max_mean(steps, values, window=0)


def test_gradient_norm_recorder_matches_the_trainers_full_batch_gradient():
    data = ar_lag_data(L=3, seed=0, n=120)
    model = IndRNN(d=data.d, m=6)
    params0 = model.init(0, dtype=torch.float64)
    recorder = GradientNormRecorder(model, data.X_train, data.y_train, every=1)
    result = Trainer(model, TrainConfig(method="gd", steps=6, lr=0.1, record_every=1), recorders=[recorder]).fit(
        params0, data)
    curves = result.curves[result.curves.step < 6]
    torch.testing.assert_close(torch.tensor(curves.grad_full_u.values), torch.tensor(curves.grad_norm_u.values))
    assert sequence_block(model) == "u" and sequence_block(KernelTransformer(d=3, m=2)) == "W"


def test_peak_memory_counts_what_the_call_allocates():
    def allocate():
        a = torch.ones(10**5, dtype=torch.float64)
        b = torch.ones(2 * 10**5, dtype=torch.float64)
        view = b[:10]
        del a
        c = torch.ones(10**5, dtype=torch.float64)
        return float(b.sum() + c.sum() + view.sum())
    assert 2.4e6 <= peak_memory_bytes(allocate) <= 2.4e6 + 1000   # a is freed before c exists


def test_training_step_memory_grows_with_T():
    """The PyTorch path keeps every state of the batch: memory proportional to T."""
    peaks = []
    for L in (3, 15):
        data = ar_lag_data(L=L, seed=0, n=40)
        model = IndRNN(d=data.d, m=8, fused=False)
        params = model.init(0, dtype=torch.float64)
        X, y = data.X_train.double(), data.y_train
        peaks.append(training_step_peak_memory(model, params, X, y))
    T_ratio = 16 / 4
    assert 0.5 * T_ratio < peaks[1] / peaks[0] < 1.5 * T_ratio


def test_fused_training_step_keeps_the_states_of_one_sample_group():
    """The fused kernel keeps every state of one group of samples per thread, not of the batch: its
    memory grows with T by the same amount whatever the batch, and its forward is flat in T."""
    fused_kernel = pytest.importorskip("attnlab.models.native.indrnn")
    if fused_kernel._library() is None:
        pytest.skip("no compiled IndRNN kernel (no C++ compiler or ATTNLAB_NATIVE=0)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = IndRNN(d=17, m=8)
        params = model.init(0, dtype=torch.float64)
        train, forward = {}, {}
        for B in (40, 400):
            for T in (4, 16):
                X, y = torch.randn(B, T, 17, dtype=torch.float64), torch.randn(B, dtype=torch.float64)
                assert model._use_fused(params, X, y)
                train[B, T] = training_step_peak_memory(model, params, X, y)
                forward[B, T] = peak_memory_bytes(lambda: model(params, X), inputs=[X, *params.values()])
    finally:
        torch.set_num_threads(threads)
    growth = train[40, 16] - train[40, 4]
    assert growth > 0 and train[400, 16] - train[400, 4] == growth
    assert forward[40, 16] == forward[40, 4] and forward[400, 16] == forward[400, 4]


def test_peak_memory_task_rnn_forward_is_flat_in_T():
    """The run task behind E8: one stored run per (model, T), through the same run store."""
    rows = {}
    for name in ("indrnn", "kernel-transformer"):
        for L in (3, 31):
            config = RunConfig.model_validate({"task": "peak-memory", "model": {"name": name, "m": 4},
                                               "data": {"name": "ar-lag", "L": L, "n": 80}})
            summary = measure(config)
            assert summary["batch"] == 64 and summary["tokens"] == L + 1
            rows[name, L + 1] = summary
    assert rows["indrnn", 32]["forward_bytes"] == rows["indrnn", 4]["forward_bytes"]
    # the fused kernel's tile over the tokens: 3 T x (SIMD lanes) floats per thread
    assert rows["kernel-transformer", 32]["forward_bytes"] > rows["kernel-transformer", 4]["forward_bytes"]
    # BPTT keeps every state of (at least) one group of 4 samples x 4 units: >= 64 bytes per token
    assert rows["indrnn", 32]["train_step_bytes"] >= rows["indrnn", 4]["train_step_bytes"] + 28 * 64