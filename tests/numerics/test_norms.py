"""Euclidean norms that stay finite where the sum of squares overflows: the projection, the gradient
norm records and the IndRNN's per-sample output gradients, which a recurrence with gain above 1 can
drive beyond 1e19 on long sequences."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from attnlab.models.indrnn import IndRNN
from attnlab.numerics.statistics import euclidean_norms, frobenius
from attnlab.train.projection import head_distances, project


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 300), exponent=st.integers(-20, 15), seed=st.integers(0, 99))
def test_finite_norms_are_torch_s_bits(rows, cols, exponent, seed):
    t = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 10.0**exponent
    assert torch.equal(euclidean_norms(t), torch.linalg.vector_norm(t, dim=-1))
    assert torch.equal(euclidean_norms(t, dim=0), torch.linalg.vector_norm(t, dim=0))


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e36])
def test_norms_of_entries_whose_squares_overflow_are_finite_and_right(scale):
    t = torch.randn(4, 1088, generator=torch.Generator().manual_seed(1)) * scale
    assert torch.isinf(torch.linalg.vector_norm(t, dim=-1)).all()   # what torch gives in float32
    got = euclidean_norms(t)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), torch.linalg.vector_norm(t.double(), dim=-1), rtol=1e-6, atol=0)
    assert frobenius(t[:1]) == pytest.approx(float(torch.linalg.vector_norm(t[0].double())), rel=1e-6)


def test_infinite_and_nan_entries_stay_infinite_and_nan():
    t = torch.ones(3, 5) * 1e25
    t[0, 2], t[1, 1] = math.inf, math.nan
    norms = euclidean_norms(t)
    assert math.isinf(norms[0]) and math.isnan(norms[1]) and math.isfinite(norms[2])


def test_projection_of_a_huge_step_lands_on_the_ball_in_its_direction():
    centre = {"u": torch.zeros(4, 3)}
    direction = torch.tensor([[1.0, 2.0, 2.0]]).repeat(4, 1) / 3
    params = {"u": direction * 1e30}   # a gradient step of a recurrence with gain above 1
    projected = project(params, centre, {"u": 3.0}, width=4)
    radius = 3.0 / math.sqrt(4)
    torch.testing.assert_close(head_distances(projected, centre, "u"), torch.full((4,), radius))
    torch.testing.assert_close(projected["u"], direction * radius)


def test_indrnn_output_gradient_norms_do_not_overflow():
    """Per-sample gradients beyond 1e19 (here from large output weights): finite, and equal to the
    float64 values."""
    model = IndRNN(d=3, m=4, gain=1.5)
    params = model.init(0)
    params["c"] = params["c"] * 1e24
    X = torch.randn(16, 40, 3, generator=torch.Generator().manual_seed(0)) / 3
    got = model.output_gradient_norms(params, X)
    want = model.output_gradient_norms({k: v.double() for k, v in params.items()}, X.double())
    assert want.min() > 1e20 and torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0)
