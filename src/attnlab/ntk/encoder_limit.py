r"""Infinite-width NTK of the shallow encoder under tau_0 = d_m^(-1) and NTK initialisation.

Derivation (spec ntk.md, section 4). With N(0, 1) weights and the NTK multipliers,
Q = X W_Q^T / sqrt(d) and Kk = X W_K^T / sqrt(d) have O(1) entries, so each logit
L_ij = d_m^(-1) sum_m Q_im Kk_jm is an average of d_m centred products: L = O(d_m^(-1/2)) -> 0, and
S -> (1/T) 1 1^T. Then every row of A = S V equals v = W_V xbar / sqrt(d), xbar = (1/T) sum_t x_t.

  * flatten: z = (v, ..., v) (T copies), h = W_H z / sqrt(T d_m) = W~ v / sqrt(d_m) with
    W~ = sum_t W_H^(t) / sqrt(T) again N(0, 1); <z, z'> / (T d_m) = <v, v'> / d_m.
  * mean: z = v and h = W_H v / sqrt(d_m).

Both are the NTK-parameterised network  xbar -> v = W_V xbar / sqrt(d) -> h = W v / sqrt(d_m) ->
f = w_O^T relu(h) / sqrt(d_m). With Sigma(a, b) = <xbar_a, xbar_b> / d, the covariance of v and
(by the law of large numbers) of h, and with the ReLU expectations for (h, h') centred Gaussian with
that covariance, u = cos(angle(xbar_a, xbar_b)),

    E[relu(h) relu(h')]   = sqrt(Sigma_aa Sigma_bb) kappa_1(u) / 2,
    E[relu'(h) relu'(h')] = kappa_0(u) / 2,
    kappa_0(u) = (pi - arccos u) / pi,   kappa_1(u) = (sqrt(1 - u^2) + (pi - arccos u) u) / pi,

the blocks converge to
    w_O: (1/d_m) sum_m relu(h_m) relu(h'_m)                          -> ||xbar_a|| ||xbar_b|| kappa_1(u) / (2d)
    W_H: (1/d_m) sum_m w_m^2 relu'(h_m) relu'(h'_m) * <v, v'> / d_m  -> <xbar_a, xbar_b> kappa_0(u) / (2d)
    W_V: <df/dv, df/dv'> <xbar_a, xbar_b> / d, with df/dv = W^T (w * relu'(h)) / d_m, whose inner
         product tends to (1/d_m) sum_m w_m^2 relu'(h_m) relu'(h'_m)  -> <xbar_a, xbar_b> kappa_0(u) / (2d)
    W_Q, W_K: tau_0^2 = d_m^(-2) times sums of d_m O(1) terms                             -> 0
so
    K_inf(a, b) = ( ||xbar_a|| ||xbar_b|| kappa_1(u) + 2 <xbar_a, xbar_b> kappa_0(u) ) / (2d).

Finite-width fluctuations (of the sums over units, and of S around uniform) are O(d_m^(-1/2)).
"""

from __future__ import annotations

import math

import torch


def arccos_kernels(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ReLU arc-cosine kernels (kappa_0(u), kappa_1(u)) of cosines u in [-1, 1]."""
    u = u.clamp(-1.0, 1.0)
    theta = torch.arccos(u)
    kappa_0 = (math.pi - theta) / math.pi
    kappa_1 = (torch.sqrt(1 - u**2) + (math.pi - theta) * u) / math.pi
    return kappa_0, kappa_1


def infinite_width_ntk_blocks(X1: torch.Tensor, X2: torch.Tensor | None = None,
                              phi: str = "flatten") -> dict[str, torch.Tensor]:
    """The limiting NTK per block (N1, N2) for X1 (N1, T, d), X2 (N2, T, d); see the module docstring.

    The limit is the same for phi = "flatten" and "mean" (both reduce to a network on the mean token).
    """
    if phi not in ("flatten", "mean"):
        raise ValueError(f"phi = {phi!r}: allowed are flatten, mean")
    X2 = X1 if X2 is None else X2
    d = X1.shape[-1]
    m1, m2 = X1.mean(dim=1), X2.mean(dim=1)                               # mean tokens (N, d)
    inner = m1 @ m2.T
    norms = m1.norm(dim=1)[:, None] * m2.norm(dim=1)[None, :]
    u = torch.where(norms > 0, inner / norms.clamp_min(torch.finfo(inner.dtype).tiny), torch.zeros_like(inner))
    kappa_0, kappa_1 = arccos_kernels(u)
    zero = torch.zeros_like(inner)
    return {"W_Q": zero, "W_K": zero.clone(), "W_V": inner * kappa_0 / (2 * d),
            "W_H": inner * kappa_0 / (2 * d), "w_O": norms * kappa_1 / (2 * d)}


def infinite_width_ntk(X1: torch.Tensor, X2: torch.Tensor | None = None, phi: str = "flatten") -> torch.Tensor:
    """K_inf(X1, X2) (N1, N2): the sum of `infinite_width_ntk_blocks`."""
    return sum(infinite_width_ntk_blocks(X1, X2, phi).values())
