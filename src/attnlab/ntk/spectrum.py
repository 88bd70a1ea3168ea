"""Spectra of NTKs: dense float64 eigendecomposition, and Lanczos for kernels given as operators.

lambda_min > 0 is what both convergence theories need; the condition number lambda_max / lambda_min
sets how fast gradient descent closes the slowest mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from attnlab.seeding import generator


def _dense(K: torch.Tensor | np.ndarray) -> np.ndarray:
    K = K.detach().cpu().double().numpy() if isinstance(K, torch.Tensor) else np.asarray(K, np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K has shape {K.shape}: a spectrum needs a square (N, N) kernel")
    return (K + K.T) / 2


def spectrum(K: torch.Tensor | np.ndarray) -> np.ndarray:
    """All eigenvalues (N,) of the symmetric kernel K (N, N), ascending, in float64."""
    return np.linalg.eigvalsh(_dense(K))


def smallest_eigenvalue(K: torch.Tensor | np.ndarray) -> float:
    """lambda_min of K (N, N) (dense float64)."""
    return float(spectrum(K)[0])


def condition_number(K: torch.Tensor | np.ndarray) -> float:
    """lambda_max / lambda_min of K (N, N); inf when lambda_min <= 0."""
    return _condition(spectrum(K))


def _condition(eigenvalues: np.ndarray) -> float:
    return float(eigenvalues[-1] / eigenvalues[0]) if eigenvalues[0] > 0 else float("inf")


@dataclass(frozen=True)
class SpectrumSummary:
    """The spectrum (ascending) of a kernel with its smallest and largest eigenvalue, condition
    number and trace."""

    eigenvalues: np.ndarray
    lambda_min: float
    lambda_max: float
    condition_number: float
    trace: float


def summarize(K: torch.Tensor | np.ndarray) -> SpectrumSummary:
    """Spectrum summary of K (N, N) from one dense float64 eigendecomposition."""
    ev = spectrum(K)
    return SpectrumSummary(ev, float(ev[0]), float(ev[-1]), _condition(ev), float(ev.sum()))


def lanczos_eigenvalues(K: LinearOperator | np.ndarray | torch.Tensor, k: int = 1, which: str = "smallest",
                        tol: float = 1e-10, seed: int = 0, maxiter: int | None = None) -> np.ndarray:
    """The k smallest (or largest) eigenvalues of the symmetric kernel K, ascending, by Lanczos
    (ARPACK through scipy's eigsh); K may be a LinearOperator of NTK-vector products
    (attnlab.ntk.operator.ntk_operator). The start vector is seeded."""
    if which not in ("smallest", "largest"):
        raise ValueError(f"which = {which!r}: allowed are 'smallest', 'largest'")
    if isinstance(K, torch.Tensor):
        K = _dense(K)
    n = K.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k = {k}: Lanczos needs 1 <= k < N = {n}")
    v0 = torch.rand(n, generator=generator(seed, "lanczos"), dtype=torch.float64).numpy() + 0.5
    values = eigsh(K, k=k, which="SA" if which == "smallest" else "LA", tol=tol, v0=v0,
                   maxiter=maxiter or 100 * n, return_eigenvectors=False, ncv=min(n, max(2 * k + 1, 20)))
    return np.sort(values)
