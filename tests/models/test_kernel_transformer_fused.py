"""The fused compiled kernel of the kernel-regime Transformer against its PyTorch formulation."""

import math
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.func import vmap

from attnlab.config import TrainConfig
from attnlab.data.dataset import clip_token_norms
from attnlab.data.teacher import teacher_data
from attnlab.models.base import Model
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.models.native import build
from attnlab.models.native import kernel_transformer as fused_kernel
from attnlab.train.trainer import Trainer

pytestmark = pytest.mark.skipif(fused_kernel._library() is None, reason="no C++ compiler: no fused kernel")


def problem(B, T, d, m, paired=True, dtype=torch.float64, seed=0, activation="tanh", scale=0.3):
    g = torch.Generator().manual_seed(seed)
    fused = KernelTransformer(d=d, m=m, activation_name=activation, paired=paired)
    plain = KernelTransformer(d=d, m=m, activation_name=activation, paired=paired, fused=False)
    params = {k: v + scale * torch.randn(v.shape, generator=g, dtype=dtype)
              for k, v in fused.init(seed, dtype).items()}
    X = clip_token_norms(torch.randn(B, T, d, generator=g, dtype=dtype))
    y = torch.randn(B, generator=g, dtype=dtype)
    return fused, plain, params, X, y


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 600), T=st.integers(1, 40), d=st.sampled_from([1, 2, 3, 4, 8, 11, 16, 24]),
       half=st.integers(1, 40), paired=st.booleans(), activation=st.sampled_from(["tanh", "erf"]))
def test_fused_equals_the_pytorch_path_in_float64(B, T, d, half, paired, activation):
    fused, plain, params, X, y = problem(B, T, d, 2 * half, paired, activation=activation)
    assert fused._use_fused(params, X, y) and not plain._use_fused(params, X, y)
    assert relative(fused(params, X), plain(params, X)) < 1e-12
    loss, grads = fused.loss_and_grad(params, X, y)
    loss_ref, grads_ref = plain.loss_and_grad(params, X, y)
    assert abs(float(loss - loss_ref)) <= 1e-12 * float(loss_ref)
    for name in ("W", "U", "c"):
        assert grads[name].shape == grads_ref[name].shape
        assert torch.allclose(grads[name], grads_ref[name], rtol=1e-10, atol=1e-13 * float(grads_ref[name].abs().max()))


@pytest.mark.parametrize("activation", ["tanh", "erf"])
@pytest.mark.parametrize("loss", ["mse", "half-sum"])
def test_fused_gradient_equals_autograd(activation, loss):
    fused, _, params, X, y = problem(300, 9, 8, 24, activation=activation)
    value, grads = fused.loss_and_grad(params, X, y, loss)
    value_ref, grads_ref = Model.loss_and_grad(fused, params, X, y, loss)   # autograd: the PyTorch path
    assert abs(float(value - value_ref)) <= 1e-12 * float(value_ref)
    for name in grads:
        assert relative(grads[name], grads_ref[name]) < 1e-10


def test_fused_equals_the_pytorch_path_in_float32():
    fused, plain, params, X, y = problem(4000, 16, 8, 256, dtype=torch.float32)
    assert relative(fused(params, X), plain(params, X)) < 1e-5
    loss, grads = fused.loss_and_grad(params, X, y)
    loss_ref, grads_ref = plain.loss_and_grad(params, X, y)
    assert abs(float(loss / loss_ref) - 1) < 1e-5
    for name in grads:
        assert relative(grads[name], grads_ref[name]) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m", [2, 34, 256])
def test_paired_initialisation_is_exactly_zero_on_the_fused_path(m, dtype):
    model = KernelTransformer(d=8, m=m)
    params = model.init(5, dtype)
    X = clip_token_norms(torch.randn(700, 16, 8, dtype=dtype)) * 3
    assert model._use_fused(params, X)
    assert torch.equal(model(params, X), torch.zeros(700, dtype=dtype))


def test_results_do_not_depend_on_the_thread_count():
    fused, _, params, X, y = problem(1500, 16, 8, 64, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        outputs = []
        for n in (1, 3):
            torch.set_num_threads(n)
            outputs.append((fused(params, X), *fused.loss_and_grad(params, X, y)))
    finally:
        torch.set_num_threads(threads)
    (f1, l1, g1), (f2, l2, g2) = outputs
    assert torch.equal(f1, f2) and torch.equal(l1, l2)
    assert all(torch.equal(g1[k], g2[k]) for k in g1)


def test_non_finite_parameters_give_a_non_finite_loss():
    fused, _, params, X, y = problem(100, 8, 8, 16)
    for bad in (math.nan, math.inf):
        broken = {**params, "W": params["W"].clone()}
        broken["W"][3, 0, 0] = bad
        assert not torch.isfinite(fused.loss_and_grad(broken, X, y)[0])


def test_autograd_transforms_and_large_d_use_the_pytorch_path():
    fused, _, params, X, y = problem(20, 4, 8, 8)
    assert not fused._use_fused({**params, "W": params["W"].requires_grad_()}, X)
    stacked = {k: v.detach().expand(3, *v.shape) for k, v in params.items()}
    out = vmap(fused, in_dims=(0, None))(stacked, X)          # vmap sees the PyTorch formulation
    assert torch.allclose(out[1], fused({k: v.detach() for k, v in params.items()}, X), atol=1e-14)
    wide = KernelTransformer(d=fused_kernel._library().kt_max_d() + 1, m=4)
    Xw = torch.randn(3, 2, wide.d, dtype=torch.float64)
    assert not wide._use_fused(wide.init(0, torch.float64), Xw)


def test_missing_compiler_warns_and_falls_back(monkeypatch):
    monkeypatch.setattr(build, "_compiler", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build.load.__wrapped__("kernel_transformer") is None
    assert "falls back to PyTorch" in str(caught[0].message)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert build.load.__wrapped__("kernel_transformer") is None


@pytest.mark.parametrize("method", ["projgd", "projsgd"])
def test_training_on_the_fused_path_equals_the_pytorch_path(method):
    data = teacher_data(400, 16, 8, seed=0, K=256).to(torch.float32)
    config = TrainConfig(method=method, steps=50, lr=0.2, radius=3.0, batch_size=32)
    fused, plain = KernelTransformer(d=8, m=32), KernelTransformer(d=8, m=32, fused=False)
    params0 = fused.init(0)
    a, b = Trainer(fused, config).fit(params0, data), Trainer(plain, config).fit(params0, data)
    for iterate in ("last", "best", "average"):
        assert a.summary[iterate]["train_loss"] == pytest.approx(b.summary[iterate]["train_loss"], rel=1e-5)


def test_stacked_runs_on_the_fused_path_equal_separate_runs():
    model = KernelTransformer(d=8, m=16)
    config = TrainConfig(method="projgd", steps=30, lr=0.3, radius=3.0)
    data = [teacher_data(200, 8, 8, seed=s, K=128).to(torch.float32) for s in range(3)]
    params0 = [model.init(s) for s in range(3)]
    together = Trainer(model, config).fit_many(params0, data, [0, 1, 2])
    for s in range(3):
        alone = Trainer(model, config).fit(params0[s], data[s])
        assert all(torch.equal(alone.last[k], together[s].last[k]) for k in alone.last)
