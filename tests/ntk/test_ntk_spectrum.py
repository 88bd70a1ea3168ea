"""Spectra: dense summaries, and Lanczos on NTK-vector products equal to the dense eigenvalues."""

import numpy as np
import pytest
import torch

from attnlab.models import KernelTransformer
from attnlab.ntk import (condition_number, empirical, lanczos_eigenvalues, ntk_diagonal, ntk_operator,
                         smallest_eigenvalue, summarize)


@pytest.fixture(scope="module")
def problem():
    model = KernelTransformer(d=3, m=8)
    params = model.init(1, dtype=torch.float64)
    X = torch.randn(40, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 2
    return model, params, X, empirical(model, X, params=params).total


def test_dense_summary_is_consistent(problem):
    *_, K = problem
    s = summarize(K)
    assert np.all(np.diff(s.eigenvalues) >= 0)
    assert s.lambda_min == pytest.approx(smallest_eigenvalue(K))
    assert s.condition_number == pytest.approx(condition_number(K)) == pytest.approx(s.lambda_max / s.lambda_min)
    assert s.trace == pytest.approx(float(K.trace()), rel=1e-12)
    assert s.lambda_min > 0


def test_operator_matches_dense_kernel(problem):
    model, params, X, K = problem
    op = ntk_operator(model, X, params=params, chunk=7)
    v = np.random.default_rng(0).standard_normal(X.shape[0])
    np.testing.assert_allclose(op @ v, K.numpy() @ v, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(ntk_diagonal(model, X, params=params, chunk=7), K.diagonal(), rtol=1e-12, atol=0)


def test_lanczos_smallest_and_largest_equal_dense():
    """N = 12: the Krylov space of ARPACK's default ncv spans everything, so a few dozen NTK-vector
    products give the extreme eigenvalues to near machine precision."""
    model = KernelTransformer(d=3, m=8)
    params = model.init(2, dtype=torch.float64)
    X = torch.randn(12, 4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dense = summarize(empirical(model, X, params=params).total)
    op = ntk_operator(model, X, params=params, chunk=5)
    assert lanczos_eigenvalues(op, k=1)[0] == pytest.approx(dense.lambda_min, rel=1e-7)
    assert lanczos_eigenvalues(op, k=2, which="largest") == pytest.approx(dense.eigenvalues[-2:], rel=1e-9)


def test_lanczos_on_dense_kernel(problem):
    *_, K = problem
    assert lanczos_eigenvalues(K, k=1)[0] == pytest.approx(summarize(K).lambda_min, rel=1e-7)


def test_bad_spectrum_input():
    with pytest.raises(ValueError, match="square"):
        smallest_eigenvalue(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="which"):
        lanczos_eigenvalues(np.eye(4), which="middle")
