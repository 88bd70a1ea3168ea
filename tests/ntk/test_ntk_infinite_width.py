"""Infinite-width kernels: Monte-Carlo standard errors shrink like 1/sqrt(draws); the empirical NTK
at large width approaches the Monte-Carlo kernel."""

import pytest
import torch

from attnlab.models import KernelTransformer
from attnlab.ntk import empirical, mc_average_ntk, transformer_mc_kernel


def inputs(n, T=4, d=3, seed=0):
    X = torch.randn(n, T, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return X / X.norm(dim=-1, keepdim=True).clamp(min=1)


def test_standard_error_shrinks_like_inverse_sqrt_draws():
    X = inputs(5)
    small = transformer_mc_kernel(X, draws=400, seed=1)
    large = transformer_mc_kernel(X, draws=6400, seed=2)
    ratio = float((small.stderr / large.stderr).mean())
    assert ratio == pytest.approx(4.0, rel=0.15)
    assert torch.allclose(small.mean, small.mean.T) and (small.stderr > 0).all()


def test_chunking_over_draws_changes_nothing():
    X1, X2 = inputs(4, seed=1), inputs(3, seed=2)
    a = transformer_mc_kernel(X1, X2, draws=300, seed=5)
    b = transformer_mc_kernel(X1, X2, draws=300, seed=5, chunk=7)
    assert a.mean.shape == (4, 3)
    assert torch.allclose(a.mean, b.mean, rtol=1e-12) and torch.allclose(a.stderr, b.stderr, rtol=1e-9)
    assert torch.allclose(sum(a.blocks.values()), a.mean, rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_empirical_ntk_at_large_width_approaches_mc_kernel(activation):
    X = inputs(6, seed=3)
    mc = transformer_mc_kernel(X, draws=20000, activation_name=activation, seed=4)
    m = 4096
    model = KernelTransformer(d=3, m=m, activation_name=activation)
    K = empirical(model, X, params=model.init(7, dtype=torch.float64)).total
    # the paired empirical NTK averages m/2 independent heads: its sd is sqrt(draws) * stderr / sqrt(m/2)
    per_draw_sd = mc.stderr * mc.draws**0.5
    tolerance = 5 * (mc.stderr**2 + per_draw_sd**2 / (m / 2)).sqrt()
    assert ((K - mc.mean).abs() <= tolerance).all()
    assert float((K - mc.mean).norm() / mc.mean.norm()) < 0.05


def test_mc_average_of_empirical_ntks():
    X = inputs(4, seed=5)
    model = KernelTransformer(d=3, m=64)
    avg = mc_average_ntk(model, X, seeds=range(12))
    assert avg.draws == 12 and set(avg.blocks) == {"W", "U", "c"}
    single = empirical(model, X, params=model.init(0, dtype=torch.float64)).total
    assert (avg.stderr > 0).all() and avg.mean.shape == single.shape
    mc = transformer_mc_kernel(X, draws=20000, seed=9)
    # the seed average of m/2 = 32-head kernels is an average over 12 * 32 independent heads
    tolerance = 5 * (mc.stderr**2 + avg.stderr**2).sqrt()
    assert ((avg.mean - mc.mean).abs() <= tolerance).all()
    with pytest.raises(ValueError, match="init"):
        mc_average_ntk(lambda p, X: X.sum((1, 2)), X, seeds=range(2))
