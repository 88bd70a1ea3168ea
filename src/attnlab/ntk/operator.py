"""Matrix-free NTK: v -> K v = J (J^T v) for N too large to hold the N x N kernel (and its diagonal).

J^T v is one vector-Jacobian product (summed over sample chunks), J u one Jacobian-vector product:
memory O(P + chunk * activations), time ~ 2 (N / chunk) passes per product. Wrapped as a scipy
LinearOperator so Lanczos (scipy.sparse.linalg.eigsh) can use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch.func import grad, jvp, vjp, vmap

from attnlab.ntk.target import Params, as_target
from attnlab.numerics.precision import exact_matmul


def ntk_operator(model: Any, X: torch.Tensor, params: Params | None = None,
                 dtype: torch.dtype | None = torch.float64, chunk: int = 256) -> LinearOperator:
    """The N x N NTK of `model` on X (N, ...) as a symmetric LinearOperator (float64 numpy in/out)."""
    if chunk <= 0:
        raise ValueError(f"chunk = {chunk}: must be a positive integer")
    target = as_target(model, params, dtype)
    X = X.to(dtype=dtype) if dtype is not None else X
    n = X.shape[0]
    like = next(iter(target.params.values()))
    slices = [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]

    def matvec(v: np.ndarray) -> np.ndarray:
        v_t = torch.as_tensor(np.asarray(v).reshape(n), dtype=like.dtype, device=like.device)
        with exact_matmul():
            u = {k: torch.zeros_like(p) for k, p in target.params.items()}
            for s in slices:                                   # u = J^T v
                _, pullback = vjp(lambda p, s=s: target.function(p, X[s]), target.params)
                for k, g in pullback(v_t[s])[0].items():
                    u[k] += g
            out = [jvp(lambda p, s=s: target.function(p, X[s]), (target.params,), (u,))[1]
                   for s in slices]                            # K v = J u
        return torch.cat(out).detach().cpu().numpy().astype(np.float64)

    return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def ntk_diagonal(model: Any, X: torch.Tensor, params: Params | None = None,
                 dtype: torch.dtype | None = torch.float64, chunk: int = 256) -> torch.Tensor:
    """K_aa = ||df(X_a)/dtheta||^2 (N,) from per-sample gradients, `chunk` samples at a time
    (memory ~ chunk * P); its sum is the trace of the NTK."""
    if chunk <= 0:
        raise ValueError(f"chunk = {chunk}: must be a positive integer")
    target = as_target(model, params, dtype)
    X = X.to(dtype=dtype) if dtype is not None else X
    gradients = vmap(grad(target.single), in_dims=(None, 0))
    parts = []
    with exact_matmul():
        for start in range(0, X.shape[0], chunk):
            G = gradients(target.params, X[start:start + chunk])
            parts.append(sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in G.values()))
    return torch.cat(parts).detach()
