"""The IndRNN's compiled kernel (models/native/indrnn.cpp) against its PyTorch path."""

from __future__ import annotations

import pytest
import torch

from attnlab.models import IndRNN
from attnlab.models.native import indrnn as fused_kernel

pytestmark = pytest.mark.skipif(fused_kernel._library() is None,
                                reason="no compiled IndRNN kernel (no C++ compiler or ATTNLAB_NATIVE=0)")


def both_paths(**kwargs):
    return IndRNN(fused=True, **kwargs), IndRNN(fused=False, **kwargs)


def problem(B, T, d, dtype, seed=0, input_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    X = input_scale * torch.randn(B, T, d, generator=gen, dtype=torch.float64)
    return X.to(dtype), torch.randn(B, generator=gen, dtype=torch.float64).to(dtype)


def perturbed(params, scale, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v.dtype)
            for k, v in params.items()}


def assert_paths_agree(fused, plain, params, X, y, rtol, loss="mse"):
    assert fused._use_fused(params, X, y) and not plain._use_fused(params, X, y)
    f = plain(params, X)
    torch.testing.assert_close(fused(params, X), f, rtol=rtol, atol=rtol * float(f.abs().max()))
    value, grads = fused.loss_and_grad(params, X, y, loss)
    ref_value, ref_grads = plain.loss_and_grad(params, X, y, loss)
    torch.testing.assert_close(value, ref_value, rtol=rtol, atol=0)
    for name in fused.blocks:
        scale = float(ref_grads[name].abs().max())
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=rtol, atol=rtol * scale)


# d = 1 and 17 have compiled-in sizes, d = 3 the generic loop; B = 130 spans three chunks of 64 and
# ends on a short group; m = 6 and 5 pad their units to a SIMD tile, m = 40 unpaired but even.
SHAPES = [(130, 33, 17, 64, True), (7, 5, 3, 6, True), (130, 9, 1, 5, False), (9, 12, 3, 40, False),
          (1, 1, 17, 2, True)]


@pytest.mark.parametrize("activation_name", ["tanh", "erf"])
@pytest.mark.parametrize("B,T,d,m,paired", SHAPES)
def test_float64_paths_agree(activation_name, B, T, d, m, paired):
    fused, plain = both_paths(d=d, m=m, activation_name=activation_name, paired=paired)
    params = perturbed(fused.init(0, dtype=torch.float64), scale=0.3)
    X, y = problem(B, T, d, torch.float64)
    assert_paths_agree(fused, plain, params, X, y, rtol=1e-12)


@pytest.mark.parametrize("activation_name", ["tanh", "erf"])
@pytest.mark.parametrize("B,T,d,m,paired", SHAPES)
def test_float32_paths_agree(activation_name, B, T, d, m, paired):
    """Contracting regime (g = 0.9): float32 rounding is not amplified along the sequence."""
    fused, plain = both_paths(d=d, m=m, activation_name=activation_name, paired=paired, gain=0.9)
    params = perturbed(fused.init(0, dtype=torch.float32), scale=0.1)
    X, y = problem(B, T, d, torch.float32, input_scale=0.5)
    assert_paths_agree(fused, plain, params, X, y, rtol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "half-sum"])
def test_expanding_regime_paths_agree(loss):
    """g Lip(sigma) = 1.5 with tiny inputs: the per-step Jacobian products grow past 1e6 (asserted)."""
    fused, plain = both_paths(d=17, m=16, gain=1.5)
    params = perturbed(fused.init(2, dtype=torch.float64), scale=0.02)
    X, y = problem(70, 60, 17, torch.float64, input_scale=1e-9)
    assert plain.state_jacobian_norms(params, X)[0] > 1e6
    assert_paths_agree(fused, plain, params, X, y, rtol=1e-10, loss=loss)


def test_tanh_is_accurate_to_a_few_ulp():
    """A one-step, one-unit network returns c tanh(w x) / sqrt(m): its tanh against torch.tanh over
    many decades, both signs (odd bit for bit), and the saturated tails (not the 2 sigmoid(2z) - 1 form, whose relative
    error near 0 is large)."""
    z = torch.cat([torch.logspace(-30, 1.5, 4000, dtype=torch.float64), torch.tensor([0.0, 40.0, 1e300])])
    z = torch.cat([z, -z])
    for dtype, ulps in ((torch.float64, 4), (torch.float32, 4)):
        model = IndRNN(d=1, m=1, paired=False)
        params = {"W_in": torch.ones(1, 1, dtype=dtype), "u": torch.zeros(1, dtype=dtype),
                  "c": torch.ones(1, dtype=dtype)}
        X = z.to(dtype).reshape(-1, 1, 1)
        got, expected = model(params, X), torch.tanh(X.reshape(-1))
        spacing = torch.finfo(dtype).eps * expected.abs().clamp_min(torch.finfo(dtype).tiny)
        assert torch.all((got - expected).abs() <= ulps * spacing), dtype
        half = len(got) // 2
        assert torch.equal(got[half:], -got[:half]), dtype       # odd, bit for bit


def test_non_finite_values_propagate_like_the_pytorch_path():
    """NaN or infinite parameters and inputs give the loss and gradients the PyTorch path gives
    (NaN where it has NaN), so a diverging run is detected whichever path trains it. An infinite
    input weight or input saturates its unit (tanh = +-1, sigma' = 0) and may leave the loss finite."""
    fused, plain = both_paths(d=3, m=8)
    base = perturbed(fused.init(0, dtype=torch.float64), scale=0.3)
    X, y = problem(70, 6, 3, torch.float64)
    X_inf = X.clone()
    X_inf[3, 2, 1] = float("inf")
    cases = [(base, X_inf, False)]
    for block, value, diverged in (("u", float("nan"), True), ("c", float("-inf"), True),
                                   ("W_in", float("inf"), False), ("u", 1e308, False)):
        params = {k: v.clone() for k, v in base.items()}
        params[block].view(-1)[1] = value
        cases.append((params, X, diverged))
    for params, inputs, diverged in cases:
        torch.testing.assert_close(fused(params, inputs), plain(params, inputs), equal_nan=True)
        value, grads = fused.loss_and_grad(params, inputs, y)
        ref_value, ref_grads = plain.loss_and_grad(params, inputs, y)
        torch.testing.assert_close(value, ref_value, equal_nan=True)
        for name in fused.blocks:
            torch.testing.assert_close(grads[name], ref_grads[name], equal_nan=True)
        if diverged:
            assert not torch.isfinite(value)


def test_results_do_not_depend_on_the_thread_count():
    model = IndRNN(d=17, m=64)
    params = perturbed(model.init(0), scale=0.1)
    X, y = problem(300, 20, 17, torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append((model(params, X), *model.loss_and_grad(params, X, y)))
    finally:
        torch.set_num_threads(threads)
    (f1, v1, g1), (f3, v3, g3) = results
    assert torch.equal(f1, f3) and torch.equal(v1, v3)
    assert all(torch.equal(g1[k], g3[k]) for k in model.blocks)


def test_tracked_or_mixed_inputs_take_the_pytorch_path():
    model = IndRNN(d=3, m=4)
    params = model.init(0, dtype=torch.float64)
    X, y = problem(5, 4, 3, torch.float64)
    assert model._use_fused(params, X, y)
    assert not model._use_fused({**params, "u": params["u"].requires_grad_(True)}, X, y)
    assert not model._use_fused(params, X.float(), y)
    assert not model._use_fused(params, X.to(torch.bfloat16), y)
    assert not IndRNN(d=3, m=4, fused=False)._use_fused(params, X, y)
    wide = IndRNN(d=fused_kernel._library().rnn_max_d() + 1, m=4)
    wide_params = wide.init(0, dtype=torch.float64)
    X_wide, _ = problem(5, 4, wide.d, torch.float64)
    assert not wide._use_fused(wide_params, X_wide)
    plain = IndRNN(d=wide.d, m=4, fused=False)
    torch.testing.assert_close(wide(wide_params, X_wide), plain(wide_params, X_wide))
