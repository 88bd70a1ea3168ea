"""Smoothness constants: per-sample output-gradient norms against autograd, the kernel Transformer's
T-free analytic bound (a property test, and tight to within 10x at initialisation), the recorder."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import grad, vmap

from attnlab.config import RunConfig
from attnlab.data.dataset import clip_token_norms
from attnlab.models.indrnn import IndRNN
from attnlab.models.indrnn import output_gradient_norms as indrnn_norms
from attnlab.models.kernel_transformer import KernelTransformer, output_gradient_bound, output_gradient_norms
from attnlab.run import train


def autograd_norms(model, params, X):
    """||df(X_b)/dtheta|| per sample by torch.func (the reference)."""
    def f(p, x):
        return model(p, x.unsqueeze(0))[0]
    per_sample = vmap(grad(f), in_dims=(None, 0))(params, X)
    return torch.sqrt(sum(g.reshape(X.shape[0], -1).pow(2).sum(1) for g in per_sample.values()))


def tokens(B, T, d, seed, radius=1.0):
    gen = torch.Generator().manual_seed(seed)
    return radius * clip_token_norms(torch.randn(B, T, d, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_transformer_structured_norms_equal_autograd(activation):
    model = KernelTransformer(d=3, m=6, activation_name=activation)
    params = model.init(1, dtype=torch.float64)
    params = {k: v + 0.3 * torch.randn_like(v) for k, v in params.items()}   # away from the pairing
    X = tokens(7, 5, 3, 0)
    torch.testing.assert_close(output_gradient_norms(model, params, X, chunk_size=3),
                               autograd_norms(model, params, X))


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_indrnn_per_sample_norms_equal_autograd(activation):
    model = IndRNN(d=2, m=6, activation_name=activation, gain=1.3)
    params = model.init(2, dtype=torch.float64)
    params = {k: v + 0.2 * torch.randn_like(v) for k, v in params.items()}
    X = tokens(5, 9, 2, 1)
    torch.testing.assert_close(indrnn_norms(model, params, X), autograd_norms(model, params, X))


@given(seed=st.integers(0, 10_000), T=st.integers(1, 40), d=st.integers(1, 6), half=st.integers(1, 6),
       scale=st.floats(0.01, 5.0), R=st.floats(0.1, 3.0), activation=st.sampled_from(["tanh", "erf"]))
def test_analytic_bound_holds_for_random_parameters_and_inputs(seed, T, d, half, scale, R, activation):
    torch.manual_seed(seed)
    model = KernelTransformer(d=d, m=2 * half, activation_name=activation, paired=False)
    params = {"W": scale * torch.randn(2 * half, d, d, dtype=torch.float64),
              "U": scale * torch.randn(2 * half, d, dtype=torch.float64),
              "c": scale * torch.randn(2 * half, dtype=torch.float64)}
    X = tokens(16, T, d, seed, radius=R)
    bound = output_gradient_bound(model, params, token_norm=R)
    assert float(output_gradient_norms(model, params, X).max()) <= bound * (1 + 1e-9)


@pytest.mark.parametrize("T", [2, 16, 64])
def test_analytic_bound_is_within_10x_of_the_measured_maximum_at_initialisation(T):
    model = KernelTransformer(d=8, m=16)
    params = model.init(0, dtype=torch.float64)
    X = tokens(300, T, 8, 3)
    measured = float(output_gradient_norms(model, params, X).max())
    bound = output_gradient_bound(model, params, token_norm=float(X.norm(dim=-1).max()))
    assert bound / 10 <= measured <= bound


def test_smoothness_recorder_writes_initial_and_largest_values_to_the_summary():
    config = RunConfig.model_validate({
        "model": {"m": 4}, "data": {"n": 30, "T": 4, "d": 3, "K": 64}, "dtype": "float64",
        "train": {"steps": 6, "radius": 3}, "diagnostics": {"record": {"smoothness": 3}}})
    result = train(config)
    curves, summary = result.curves, result.summary
    assert curves["output_grad_norm"].notna().sum() == 3   # steps 0, 3 and 6
    assert summary["initial"]["output_grad_norm"] == curves["output_grad_norm"].iloc[0]
    assert summary["max"]["output_grad_ratio"] <= 1
    assert summary["max"]["grad_norm"] == pytest.approx(
        max((curves[[f"grad_norm_{b}" for b in "WUc"]]**2).sum(axis=1).pow(0.5).dropna()))
    with pytest.raises(ValueError, match="diagnostics.record.smoothness"):
        from attnlab.models.base import Model
        from attnlab.train.smoothness import SmoothnessRecorder
        SmoothnessRecorder(type("M", (Model,), {"name": "shallow-encoder"})(), torch.zeros(1, 1, 1))
