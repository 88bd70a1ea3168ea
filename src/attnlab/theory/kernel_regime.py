"""The two width-dependent error terms of the kernel-regime theorem, measured directly.

Spec kernel-regime-transformer.md, sections 4 and 6 (E1, E2):

- approximation error: the teacher f*(X) = E_phi <psi(X; phi), v(phi)> replaced by its average over
  m i.i.d. draws, f_m(X) = (1/m) sum_k <psi(X; phi_k), v(phi_k)>; error max_j |f_m(X_j) - y_j|.
- linearisation error: from the paired initialisation (f(theta_0) = 0), every head moved to the
  boundary of its ball along its own gradient direction; error mean_j |f(theta_0 + Delta) -
  <grad f(theta_0), Delta>| at the inputs X_j.

Both are predicted to fall like m^(-1/2).
"""

from __future__ import annotations

import math

import torch
from torch.func import jvp

from attnlab.data.teacher import Teacher
from attnlab.models.kernel_transformer import KernelTransformer, covariance_times_readout, head_features
from attnlab.models.base import Params


def approximation_error(teacher: Teacher, X: torch.Tensor, y: torch.Tensor, m: int,
                        stream: str = "approximation-draws", chunk: int = 512) -> float:
    """max_j |f_m(X_j) - y_j| for X (n, T, d), y (n,) the teacher's labels, with m fresh draws of phi
    (independent of the label draws). Computed in float64."""
    U, W = teacher.draw(m, stream=stream)
    X = X.to(torch.float64)
    total = torch.zeros(X.shape[0], dtype=torch.float64)
    for start in range(0, m, chunk):
        total += teacher.features_dot_transport(X, U[start:start + chunk], W[start:start + chunk]).sum(1)
    return float((total / m - y.to(torch.float64)).abs().max())


def boundary_direction(model: KernelTransformer, params0: Params, X: torch.Tensor,
                       radii: dict[str, float]) -> Params:
    """Delta of spec E2: per head, U and W move a distance rho/sqrt(m) along the gradient of
    sum_j sigma(s_i(X_j)); every c_i grows by rho_c/sqrt(m). radii: block ('W', 'U', 'c') -> rho."""
    h = head_features(params0["W"], params0["U"], X)
    ds = model.sigma_prime(h.s)                                         # (n, m)
    g_U = torch.einsum("bm,bmd->md", ds, h.a)
    g_W = torch.einsum("bmd,be->mde", ds.unsqueeze(-1) * covariance_times_readout(X, h), h.xT)
    r = 1 / math.sqrt(model.m)

    def along(g: torch.Tensor, rho: float) -> torch.Tensor:
        norms = g.reshape(g.shape[0], -1).norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
        return (rho * r) * g / norms.reshape(-1, *(1,) * (g.dim() - 1))

    return {"W": along(g_W, radii["W"]), "U": along(g_U, radii["U"]),
            "c": torch.full_like(params0["c"], radii["c"] * r)}


def linearisation_error(model: KernelTransformer, params0: Params, X: torch.Tensor,
                        radii: dict[str, float]) -> float:
    """mean_j |f(theta_0 + Delta)(X_j) - <grad f(theta_0)(X_j), Delta>| for X (n, T, d)."""
    delta = boundary_direction(model, params0, X, radii)
    moved = {k: params0[k] + delta[k] for k in params0}
    with torch.no_grad():
        f0, linear = jvp(lambda p: model(p, X), (params0,), (delta,))
        f_moved = model(moved, X)
    return float((f_moved - f0 - linear).abs().mean())
