"""Generic empirical NTKs of any f(params, X): Jacobian contraction and NTK-vector products.

Both return the kernel per parameter block, K_p[a, b] = <df(X1_a)/dtheta_p, df(X2_b)/dtheta_p>, as a
dict block -> (N1, N2) tensor (or {"total": K} with blocks=False). Chunk sizes only change memory
and time, never the numbers beyond rounding. See attnlab.ntk.cost for the cost model.
"""

from __future__ import annotations

import torch
from torch.func import grad, jacrev, jvp, vmap

from attnlab.ntk.target import Params, Target


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def per_sample_jacobians(target: Target, X: torch.Tensor) -> Params:
    """df(X_b)/dtheta per block, flattened: block -> (B, P_block)."""
    J = vmap(jacrev(target.single), in_dims=(None, 0))(target.params, X)
    return {k: v.reshape(X.shape[0], -1) for k, v in J.items()}


def _contract(J1: Params, J2: Params, blocks: bool) -> Params:
    tiles = {k: J1[k] @ J2[k].T for k in J1}
    return tiles if blocks else {"total": sum(tiles.values())}


def jacobian_ntk(target: Target, X1: torch.Tensor, X2: torch.Tensor | None = None, *,
                 chunk: int | None = None, blocks: bool = True) -> Params:
    """Jacobian contraction, `chunk` samples' Jacobians at a time (all at once when None).

    K(X1, X1) is computed on and above the diagonal tiles only and mirrored. When X2's Jacobians do
    not fit in one chunk they are recomputed for every chunk of X1 (memory stays ~ chunk * P)."""
    symmetric = X2 is None
    X2 = X1 if symmetric else X2
    n1, n2 = X1.shape[0], X2.shape[0]
    chunk = chunk or max(n1, n2)
    names = target.blocks if blocks else ("total",)
    like = next(iter(target.params.values()))
    out = {k: torch.zeros(n1, n2, dtype=like.dtype, device=like.device) for k in names}
    rows, cols = _chunks(n1, chunk), _chunks(n2, chunk)
    cached = per_sample_jacobians(target, X2) if not symmetric and len(cols) == 1 else None
    for i, r in enumerate(rows):
        J1 = per_sample_jacobians(target, X1[r])
        for j, c in enumerate(cols):
            if symmetric and j < i:
                continue
            if symmetric and j == i:
                J2 = J1
            else:
                J2 = cached if cached is not None else per_sample_jacobians(target, X2[c])
            for k, tile in _contract(J1, J2, blocks).items():
                out[k][r, c] = tile
                if symmetric and j > i:
                    out[k][c, r] = tile.T
    return out


def vjp_jvp_ntk(target: Target, X1: torch.Tensor, X2: torch.Tensor | None = None, *,
                chunk1: int = 1, chunk2: int = 1, blocks: bool = True) -> Params:
    """NTK-vector products: for `chunk1` rows a, the gradient v_a = df(X1_a)/dtheta (a vjp); then for
    `chunk2` columns b, the jvp of f(., X2_b) along v_a gives K[a, b]. Per block, the jvp moves only
    that block. Memory ~ chunk1 * P + chunk1 * chunk2 * activations."""
    X2 = X1 if X2 is None else X2
    n1, n2 = X1.shape[0], X2.shape[0]
    params = target.params
    gradients = vmap(grad(target.single), in_dims=(None, 0))
    like = next(iter(params.values()))
    names = target.blocks if blocks else ("total",)
    out = {k: torch.zeros(n1, n2, dtype=like.dtype, device=like.device) for k in names}

    for r in _chunks(n1, chunk1):
        V = gradients(params, X1[r])
        for c in _chunks(n2, chunk2):
            Xb = X2[c]
            if blocks:
                for k in names:
                    def moved(pk: torch.Tensor, k: str = k) -> torch.Tensor:
                        return target.function({**params, k: pk}, Xb)
                    out[k][r, c] = vmap(lambda v: jvp(moved, (params[k],), (v,))[1])(V[k])
            else:
                def whole(p: Params) -> torch.Tensor:
                    return target.function(p, Xb)
                out["total"][r, c] = vmap(lambda v: jvp(whole, (params,), (v,))[1])(V)
    return out
