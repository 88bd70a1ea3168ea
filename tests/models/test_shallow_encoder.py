"""The shallow encoder: analytic gradients, structured NTK and initialisation variances."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.func import functional_call, grad_and_value, jacrev, vmap

from attnlab.models.shallow_encoder import ShallowEncoder, logit_exponent
from attnlab.seeding import generator
from attnlab.models.losses import squared_loss

VARIANTS = list(itertools.product(("flatten", "mean"), ("sqrt", "linear"), ("lecun", "he", "ntk")))


def _inputs(n: int, T: int, d: int, seed: int = 0) -> torch.Tensor:
    X = torch.randn(n, T, d, generator=generator(seed, "test-inputs"), dtype=torch.float64)
    return X / X.norm(dim=-1, keepdim=True)


def _model(phi, scaling, init, outputs=1, d=5, T=4, d_m=7):
    return ShallowEncoder(d=d, T=T, d_m=d_m, phi=phi, scaling=scaling, init=init, outputs=outputs)


@pytest.mark.parametrize("phi,scaling,init", VARIANTS)
@pytest.mark.parametrize("outputs", [1, 3])
def test_gradient_equals_autograd(phi, scaling, init, outputs):
    model = _model(phi, scaling, init, outputs)
    params = model.init(seed=1, dtype=torch.float64)
    X = _inputs(6, model.T, model.d)
    shape = (6,) if outputs == 1 else (6, outputs)
    y = torch.randn(shape, generator=generator(2, "y"), dtype=torch.float64)
    for loss in ("half-mse", "mse"):
        value, grads = model.loss_and_grad(params, X, y, loss)
        ref_grads, ref_value = grad_and_value(lambda p: squared_loss(model.forward(p, X), y, loss))(params)
        assert torch.allclose(value, ref_value, rtol=1e-12)
        for name in model.blocks:
            assert grads[name].shape == params[name].shape
            assert torch.allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-13), name


def reference_ntk_blocks(model: ShallowEncoder, params, X1, X2, output=None):
    """Per-sample Jacobians with torch.func (jacrev + vmap), contracted block by block."""
    def f(p, x):
        out = model.forward(p, x.unsqueeze(0))[0]
        return out if output is None else out[output]
    J1 = vmap(jacrev(f), in_dims=(None, 0))(params, X1)
    J2 = vmap(jacrev(f), in_dims=(None, 0))(params, X2)
    return {name: J1[name].reshape(X1.shape[0], -1) @ J2[name].reshape(X2.shape[0], -1).T
            for name in model.blocks}


def _relative(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("phi,scaling,init", VARIANTS)
def test_structured_ntk_equals_jacobian_contraction(phi, scaling, init):
    model = _model(phi, scaling, init)
    params = model.init(seed=3, dtype=torch.float64)
    # move away from initialisation so every block is generic
    params = {k: v + 0.3 * torch.randn(v.shape, generator=generator(4, k), dtype=v.dtype) * v.std()
              for k, v in params.items()}
    X1, X2 = _inputs(5, model.T, model.d, 5), _inputs(3, model.T, model.d, 6)
    for A, B in ((X1, X2), (X1, X1)):
        got = model.ntk_blocks(params, A, B if B is not A else None, max_entries=40)  # several chunks
        ref = reference_ntk_blocks(model, params, A, B)
        for name in model.blocks:
            assert got[name].shape == (A.shape[0], B.shape[0])
            assert _relative(got[name], ref[name]) < 1e-10, name
        assert _relative(sum(got.values()), sum(ref.values())) < 1e-10


def test_structured_ntk_multi_output():
    model = _model("mean", "sqrt", "ntk", outputs=3)
    params = model.init(seed=3, dtype=torch.float64)
    X = _inputs(4, model.T, model.d)
    total = None
    for k in range(3):
        got = model.ntk(params, X, output=k)
        ref = sum(reference_ntk_blocks(model, params, X, X, output=k).values())
        assert _relative(got, ref) < 1e-10
        total = ref if total is None else total + ref
    assert _relative(model.ntk(params, X), total) < 1e-10


@pytest.mark.parametrize("init", ["lecun", "he", "ntk"])
@pytest.mark.parametrize("phi", ["flatten", "mean"])
def test_initialisation_variances_match_table(init, phi):
    d, T, d_m = 50, 4, 200
    model = ShallowEncoder(d=d, T=T, d_m=d_m, phi=phi, init=init)
    params = model.init(seed=0, dtype=torch.float64)
    gain = {"lecun": 1.0, "he": 2.0}.get(init)
    fan_in_H = T * d_m if phi == "flatten" else d_m
    expected = ({"W_Q": gain / d, "W_K": gain / d, "W_V": gain / d, "W_H": gain / fan_in_H, "w_O": gain / d_m}
                if gain else dict.fromkeys(model.blocks, 1.0))
    for name, w in params.items():
        n = w.numel()
        measured = float(w.pow(2).mean())                                 # mean is 0 by construction
        assert abs(float(w.mean())) < 5 * math.sqrt(expected[name] / n)
        # the sample second moment has relative standard error sqrt(2/n)
        assert abs(measured / expected[name] - 1) < 5 * math.sqrt(2 / n), name
    if init == "ntk":
        assert model.tau_1 == pytest.approx(d_m**-0.5)
        assert model.multipliers["W_H"] == pytest.approx(fan_in_H**-0.5)
        assert model.effective_variances()["W_Q"] == pytest.approx(1 / d)
    else:
        assert model.tau_1 == 1.0 and set(model.multipliers.values()) == {1.0}


def test_logit_scaling_and_shapes():
    assert logit_exponent("sqrt") == 0.5 and logit_exponent("linear") == 1.0 and logit_exponent(0.75) == 0.75
    with pytest.raises(ValueError, match="scaling"):
        logit_exponent("cubic")
    model = ShallowEncoder(d=3, T=2, d_m=16, scaling="linear", outputs=4)
    assert model.tau_0 == pytest.approx(1 / 16)
    params = model.init(0, dtype=torch.float64)
    assert model.forward(params, _inputs(5, 2, 3)).shape == (5, 4)
    with pytest.raises(ValueError, match="expected \\(B, T=2, d=3\\)"):
        model.forward(params, _inputs(5, 3, 3))
    with pytest.raises(ValueError, match="phi"):
        ShallowEncoder(d=3, T=2, d_m=4, phi="max")
    state = model.forward_state(params, _inputs(5, 2, 3))
    assert torch.allclose(state.S.sum(-1), torch.ones(5, 2, dtype=torch.float64))
    assert torch.equal(state.r, torch.relu(state.h))
