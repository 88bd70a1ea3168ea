"""IndRNN: exact gradients, paired initialisation, projection and training (spec recurrent-baseline.md s. 1)."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import ConfigError, IndRNNConfig, TrainConfig, parse_config
from attnlab.data.sequences import ar_lag_data
from attnlab.models import IndRNN, build_model
from attnlab.models import indrnn
from attnlab.models.base import Model
from attnlab.models.native import indrnn as fused_kernel
from attnlab.models.losses import loss_scale, squared_loss
from attnlab.train.projection import head_distances
from attnlab.train.trainer import Trainer


def small_problem(B=7, T=5, d=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(B, T, d, generator=gen, dtype=dtype)
    y = torch.randn(B, generator=gen, dtype=dtype)
    return X, y


def perturbed(params, seed=1, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}


@pytest.fixture(params=[True, False], ids=["fused", "pytorch"])
def fused(request):
    """Both paths of the IndRNN: the compiled kernel (skipped when it cannot be built) and PyTorch."""
    if request.param and fused_kernel._library() is None:
        pytest.skip("no compiled IndRNN kernel (no C++ compiler or ATTNLAB_NATIVE=0)")
    return request.param


def manual_loop_forward(params, X, sigma):
    """The recurrence written as plainly as possible: h_0 = 0, h_t = sigma(W_in x_t + u h_{t-1})."""
    h = torch.zeros(X.shape[0], params["u"].shape[0], dtype=X.dtype)
    for t in range(X.shape[1]):
        h = sigma(X[:, t] @ params["W_in"].T + params["u"] * h)
    return h @ params["c"] / math.sqrt(params["c"].shape[0])


@pytest.mark.parametrize("activation_name", ["tanh", "erf"])
@pytest.mark.parametrize("loss", ["mse", "half-mse", "half-sum"])
@pytest.mark.parametrize("m,paired", [(6, True), (5, False)])
def test_hand_written_backward_matches_autograd(activation_name, loss, m, paired, fused):
    model = IndRNN(d=3, m=m, activation_name=activation_name, gain=1.2, paired=paired, fused=fused)
    params = perturbed(model.init(0, dtype=torch.float64))
    X, y = small_problem()
    assert model._use_fused(params, X, y) == fused
    value, grads = model.loss_and_grad(params, X, y, loss)
    ref_value, ref_grads = Model.loss_and_grad(model, params, X, y, loss)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-14)
    for name in model.blocks:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation_name", ["tanh", "erf"])
@pytest.mark.parametrize("input_scale,growth", [(1.0, None), (1e-12, 1e4)])
def test_backward_matches_autograd_through_a_plain_loop(activation_name, input_scale, growth, fused):
    """Long sequence (T = 64), gain 1.5 (g Lip(sigma) > 1). With tiny inputs the units stay near 0,
    where sigma' is largest, so the products of per-step Jacobians grow by many orders of magnitude
    (asserted)."""
    model = IndRNN(d=3, m=8, activation_name=activation_name, gain=1.5, fused=fused)
    sigma = model.sigma
    params = perturbed(model.init(2, dtype=torch.float64), scale=0.05)
    X, y = small_problem(B=5, T=64, seed=3)
    X = input_scale * X
    if growth is not None:
        assert model.state_jacobian_norms(params, X)[0] > growth
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ref_value = squared_loss(manual_loop_forward(leaves, X, sigma), y, "mse")
    ref_value.backward()
    value, grads = model.loss_and_grad(params, X, y, "mse")
    torch.testing.assert_close(value, ref_value.detach(), rtol=1e-12, atol=0)
    for name in model.blocks:
        torch.testing.assert_close(grads[name], leaves[name].grad, rtol=1e-9, atol=0)


def test_forward_without_autograd_matches_the_traced_one():
    model = IndRNN(d=3, m=6)
    params = perturbed(model.init(0, dtype=torch.float64))
    X, _ = small_problem(T=12)
    traced = model({k: v.clone().requires_grad_(True) for k, v in params.items()}, X)
    assert traced.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(model(params, X), traced.detach(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_paired_initialisation_loss_is_exact(dtype, fused):
    """At the paired initialisation f = 0 exactly, so the loss is that of predicting 0."""
    model = IndRNN(d=17, m=64, gain=1.5, fused=fused)
    params = model.init(5, dtype=dtype)
    X = torch.randn(50, 40, 17, generator=torch.Generator().manual_seed(0)).to(dtype)
    y = torch.randn(50, generator=torch.Generator().manual_seed(1)).to(dtype)
    value, _ = model.loss_and_grad(params, X, y, "mse")
    assert torch.equal(value, loss_scale("mse", 50) * (y**2).sum())      # the residual is exactly -y


def test_forward_matches_a_plain_loop(fused):
    model = IndRNN(d=3, m=4, fused=fused)
    params = perturbed(model.init(3, dtype=torch.float64))
    X, _ = small_problem(T=9)
    torch.testing.assert_close(model(params, X), manual_loop_forward(params, X, torch.tanh))


def test_states_and_pre_activations_agree():
    model = IndRNN(d=3, m=4)
    params = perturbed(model.init(0, dtype=torch.float64))
    X, _ = small_problem(T=6)
    Z, h_T = model.pre_activations(params, X)
    H = model.states(params, X)
    torch.testing.assert_close(H, torch.tanh(Z))
    torch.testing.assert_close(H[-1], h_T)
    torch.testing.assert_close(H[-1], model.final_state(params, X))


def test_single_step_sequence(fused):
    model = IndRNN(d=3, m=4, fused=fused)
    params = perturbed(model.init(0, dtype=torch.float64))
    X, y = small_problem(T=1)
    _, grads = model.loss_and_grad(params, X, y)
    _, ref = Model.loss_and_grad(model, params, X, y)
    assert torch.count_nonzero(grads["u"]) == 0
    for name in model.blocks:
        torch.testing.assert_close(grads[name], ref[name])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m", [2, 10, 64])
def test_paired_initialisation_gives_exactly_zero(dtype, m, fused):
    model = IndRNN(d=17, m=m, gain=1.5, fused=fused)
    params = model.init(5, dtype=dtype)
    X = torch.randn(50, 40, 17, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert torch.count_nonzero(model(params, X)) == 0
    with torch.no_grad():                        # the trainers evaluate without autograd
        assert torch.count_nonzero(model(params, X)) == 0
        H = model.states(params, X)
        assert torch.equal(H[:, :, : m // 2], H[:, :, m // 2:])


@pytest.mark.parametrize("activation_name", ["tanh", "erf"])
@pytest.mark.parametrize("m, paired", [(8, True), (7, False)])
@pytest.mark.parametrize("loss", ["mse", "half-sum"])
def test_stacked_runs_match_each_run(activation_name, m, paired, loss):
    """forward_runs / loss_and_grad_runs (S runs on one run axis) give each run's forward, loss and
    gradient, in float64 to 1e-10, also in the expanding regime (gain 1.5, T = 30)."""
    model = IndRNN(d=4, m=m, activation_name=activation_name, paired=paired, fused=False)
    S = 3
    params = [perturbed(model.init(s, torch.float64), seed=s) for s in range(S)]
    problems = [small_problem(B=6, T=30, d=4, seed=s) for s in range(S)]
    stacked = {k: torch.stack([p[k] for p in params]) for k in params[0]}
    X, y = torch.stack([X for X, _ in problems]), torch.stack([y for _, y in problems])
    values, grads = model.loss_and_grad_runs(stacked, X, y, loss)
    f = model.forward_runs(stacked, X)
    for s in range(S):
        value, grad = model.loss_and_grad(params[s], X[s], y[s], loss)
        torch.testing.assert_close(values[s], value, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(f[s], model(params[s], X[s]), rtol=1e-10, atol=1e-12)
        for block in grad:
            torch.testing.assert_close(grads[block][s], grad[block], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_runs_at_the_paired_initialisation_give_exactly_zero(dtype):
    model = IndRNN(d=17, m=64, fused=False)
    params = {k: torch.stack([model.init(s, dtype)[k] for s in range(3)]) for k in model.blocks}
    X = torch.randn(3, 20, 40, 17, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert torch.count_nonzero(model.forward_runs(params, X)) == 0


def test_initialisation_law():
    g = 0.7
    model = IndRNN(d=4, m=200, gain=g)
    p = model.init(1, dtype=torch.float64)
    half = 100
    assert set(p["u"].abs().unique().tolist()) == {g}
    assert set(p["c"].unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(p["W_in"][:half], p["W_in"][half:]) and torch.equal(p["u"][:half], p["u"][half:])
    assert torch.equal(p["c"][:half], -p["c"][half:])
    assert 0.3 < (p["u"][:half] > 0).double().mean() < 0.7
    assert abs(float(p["W_in"].std()) - 1) < 0.15
    assert torch.equal(model.init(1)["W_in"], model.init(1)["W_in"])
    assert not torch.equal(model.init(1)["W_in"], model.init(2)["W_in"])


def test_state_jacobian_norms_match_autograd():
    model = IndRNN(d=3, m=4, gain=1.3)
    params = perturbed(model.init(0, dtype=torch.float64))
    X, _ = small_problem(B=1, T=6)
    norms = model.state_jacobian_norms(params, X)
    # autograd: the Jacobian of h_T with respect to h_t through the remaining steps
    u, W = params["u"], params["W_in"]
    hs = [torch.tanh(X[:, 0] @ W.T)]
    for t in range(1, 6):
        hs.append(torch.tanh(X[:, t] @ W.T + u * hs[-1]))
    expected = []
    for t in range(6):
        jac = torch.autograd.functional.jacobian(lambda v: _roll(v, t, X, W, u), hs[t])[0, :, 0, :]
        expected.append(torch.linalg.matrix_norm(jac, ord=2))
    torch.testing.assert_close(norms, torch.stack(expected))
    assert norms[-1] == 1


def _roll(h, t, X, W, u):
    for s in range(t + 1, X.shape[1]):
        h = torch.tanh(X[:, s] @ W.T + u * h)
    return h


def test_projection_keeps_every_unit_in_its_ball():
    data = ar_lag_data(L=6, seed=0, n=200)
    model = IndRNN(d=data.d, m=8, gain=1.5)
    params0 = model.init(0, dtype=torch.float64)
    rho = 0.05
    config = TrainConfig(method="projgd", steps=30, lr=2.0, radius=rho, record_every=10)
    result = Trainer(model, config).fit(params0, data)
    for name in model.blocks:
        dist = head_distances(result.last, params0, name)
        assert dist.shape == (8,)
        assert float(dist.max()) <= rho / math.sqrt(8) * (1 + 1e-9)
    assert float(head_distances(result.last, params0, "W_in").max()) > 0.5 * rho / math.sqrt(8)


def test_short_training_run_decreases_loss():
    data = ar_lag_data(L=3, seed=1, n=300)
    model = IndRNN(d=data.d, m=16, gain=1.0)
    params0 = model.init(0, dtype=torch.float64)
    config = TrainConfig(method="gd", steps=60, lr=0.5, record_every=20)
    result = Trainer(model, config).fit(params0, data)
    initial = float(squared_loss(model(params0, data.X_train), data.y_train))
    assert result.summary["last"]["train_loss"] < 0.9 * initial
    assert {"grad_norm_u", "grad_norm_W_in", "dist_c"} <= set(result.curves.columns)


def test_config_builds_the_model_and_rejects_bad_values():
    config = parse_config({"model": {"name": "indrnn", "m": 8, "gain": 0.5}})
    model = build_model(config.model, d=17)
    assert isinstance(model, IndRNN) and model.gain == 0.5 and model.m == 8
    with pytest.raises(ConfigError, match="model.m = .*must be even"):
        parse_config({"model": {"name": "indrnn", "m": 7}})
    with pytest.raises(ConfigError, match="model.gain"):
        parse_config({"model": {"name": "indrnn", "gain": 0}})
    with pytest.raises(ValueError, match="gain"):
        IndRNN(d=3, m=4, gain=-1.0)
    assert IndRNNConfig().gain == 1.5
