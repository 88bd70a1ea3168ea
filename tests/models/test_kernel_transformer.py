import math

import pytest
import torch
from torch.func import jacrev, vmap

from attnlab.data.dataset import clip_token_norms
from attnlab.models.base import Model
from attnlab.models.kernel_transformer import (KernelTransformer, covariance_times_readout, fused_head_moments,
                                             head_features)


def random_inputs(B, T, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return clip_token_norms(torch.randn(B, T, d, generator=g, dtype=dtype))


def perturbed(params, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("m", [2, 6, 64, 258])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_paired_initialisation_is_exactly_zero(m, dtype, activation):
    model = KernelTransformer(d=5, m=m, activation_name=activation)
    for seed in range(3):
        params = model.init(seed, dtype=dtype)
        X = random_inputs(33, 7, 5, seed=seed, dtype=dtype) * 3  # also outside the unit ball
        assert torch.equal(model(params, X), torch.zeros(33, dtype=dtype))


def test_unpaired_initialisation_is_not_zero():
    model = KernelTransformer(d=4, m=8, paired=False)
    assert model(model.init(0, torch.float64), random_inputs(5, 3, 4)).abs().max() > 0


@pytest.mark.parametrize("bad", [dict(m=7), dict(m=0), dict(m=-4), dict(d=0), dict(activation_name="relu")])
def test_invalid_construction_is_refused(bad):
    kwargs = dict(d=4, m=8) | bad
    with pytest.raises(ValueError, match="m =|d =|activation"):
        KernelTransformer(**kwargs)


def test_forward_matches_the_per_sequence_equations():
    model = KernelTransformer(d=3, m=4, paired=False)
    params = perturbed(model.init(0, torch.float64))
    X = random_inputs(6, 5, 3)
    expected = []
    for x in X:
        total = 0.0
        for i in range(4):
            z = x @ params["W"][i] @ x[-1]
            a = torch.softmax(z, 0) @ x
            total += params["c"][i] * torch.tanh(params["U"][i] @ a)
        expected.append(total / 2)
    torch.testing.assert_close(model(params, X), torch.stack(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "erf"])
@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("loss", ["mse", "half-mse", "half-sum"])
def test_hand_derived_gradients_equal_autograd(activation, T, loss):
    model = KernelTransformer(d=4, m=6, activation_name=activation)
    params = perturbed(model.init(3, torch.float64))
    X = random_inputs(11, T, 4, seed=T)
    y = torch.randn(11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    value, grads = model.loss_and_grad(params, X, y, loss)
    ref_value, ref_grads = Model.loss_and_grad(model, params, X, y, loss)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=0)
    for name in model.blocks:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12)


def test_per_sample_gradients_equal_autograd_jacobian():
    model = KernelTransformer(d=3, m=4)
    params = perturbed(model.init(0, torch.float64))
    X = random_inputs(5, 4, 3)
    jac = vmap(jacrev(lambda p, x: model(p, x[None])[0]), in_dims=(None, 0))(params, X)
    mine = model.per_sample_gradients(params, X)
    for name in model.blocks:
        torch.testing.assert_close(mine[name], jac[name], rtol=1e-10, atol=1e-12)


def test_single_token_sequences():
    """T = 1: the softmax of one token is 1, so a = x_1 and the W-gradient vanishes."""
    model = KernelTransformer(d=4, m=6, paired=False)
    params = model.init(1, torch.float64)
    X = random_inputs(8, 1, 4)
    expected = torch.tanh(X[:, 0] @ params["U"].T) @ params["c"] / math.sqrt(6)
    torch.testing.assert_close(model(params, X), expected, rtol=1e-12, atol=1e-12)
    _, grads = model.loss_and_grad(params, X, torch.ones(8, dtype=torch.float64))
    assert torch.count_nonzero(grads["W"]) == 0


def test_initialisation_is_seeded_and_dtype_independent():
    model = KernelTransformer(d=4, m=8)
    a, b = model.init(5, torch.float64), model.init(5, torch.float64)
    c32 = model.init(5, torch.float32)
    for name in model.blocks:
        assert torch.equal(a[name], b[name])
        torch.testing.assert_close(c32[name].double(), a[name], rtol=1e-7, atol=1e-7)
    assert not torch.equal(model.init(6)["W"], c32["W"])


@pytest.mark.parametrize("T", [1, 5, 97])
@pytest.mark.parametrize("d", [1, 8, 17])
@pytest.mark.parametrize("m", [3, 8])
def test_fused_attention_moments_equal_the_materialised_ones(T, d, m):
    g = torch.Generator().manual_seed(T * d + m)
    X = torch.randn(11, T, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    W, U = torch.randn(m, d, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    h = head_features(W, U, X)
    s, a, g_ = fused_head_moments(W, U, X)
    for got, want in ((s, h.s), (a, h.a), (g_, covariance_times_readout(X, h))):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    s_only, a_only, none = fused_head_moments(W, U, X, covariance=False)
    assert none is None
    torch.testing.assert_close(s_only, s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a_only, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("loss", ["mse", "half-sum"])
def test_the_sdpa_path_equals_the_materialised_path(paired, loss):
    plain = KernelTransformer(d=5, m=6, paired=paired, fused=False)
    sdpa = KernelTransformer(d=5, m=6, paired=paired, fused=False, sdpa=True)
    g = torch.Generator().manual_seed(1)
    params = perturbed(plain.init(0, torch.float64))
    X, y = random_inputs(40, 7, 5, seed=2), torch.randn(40, generator=g, dtype=torch.float64)
    torch.testing.assert_close(sdpa(params, X), plain(params, X), rtol=1e-10, atol=1e-12)
    loss_sdpa, grads_sdpa = sdpa.loss_and_grad(params, X, y, loss)
    loss_plain, grads_plain = plain.loss_and_grad(params, X, y, loss)
    torch.testing.assert_close(loss_sdpa, loss_plain, rtol=1e-12, atol=0)
    for block in plain.blocks:
        torch.testing.assert_close(grads_sdpa[block], grads_plain[block], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_sdpa_path_is_exactly_zero_at_the_paired_initialisation(dtype):
    model = KernelTransformer(d=8, m=34, fused=False, sdpa=True)
    X = torch.randn(50, 16, 8, dtype=dtype)
    assert torch.equal(model(model.init(5, dtype), X), torch.zeros(50, dtype=dtype))


def test_sdpa_none_takes_the_fused_call_on_cuda_tensors_only():
    model = KernelTransformer(d=4, m=6, fused=False, sdpa=None)
    assert model._use_sdpa(torch.zeros(2, 3, 4)) is False
    assert KernelTransformer(d=4, m=6, sdpa=True)._use_sdpa(torch.zeros(2, 3, 4)) is True
