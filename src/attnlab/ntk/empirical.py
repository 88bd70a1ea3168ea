"""`empirical`: the exact empirical NTK of a model on inputs, by the cheapest path that fits.

K_ab = <grad_theta f(X1_a), grad_theta f(X2_b)>, per parameter block and in total. Methods:

- "structured": the model's own `ntk_blocks(params, X1, X2=None) -> {block: (N1, N2)}` (an attnlab
  model MAY declare it, `has_structured_ntk`; the KernelTransformer and the ShallowEncoder do). No
  per-sample gradient is ever built.
- "jacobian": per-sample Jacobians (vmap over jacrev) contracted block by block. Time
  ~ N (forward+backward) + N1 N2 P, memory ~ N P (chunked to stay within `max_memory`).
- "vjp-jvp": NTK-vector products. Time ~ N1 N2 forward-mode passes, memory O(P).
- "auto": "structured" when the model declares `ntk_blocks`, else the generic method of smaller estimated
  time within `max_memory` (the cost model is in attnlab.ntk.cost).

Kernels are computed with TF32 disabled; pass dtype=torch.float64 for small eigenvalues.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from attnlab.models.base import Model
from attnlab.ntk.cost import DEFAULT_MAX_MEMORY, choose_plan, footprint, plan_jacobian, plan_vjp_jvp
from attnlab.ntk.generic import jacobian_ntk, vjp_jvp_ntk
from attnlab.ntk.target import Params, as_target
from attnlab.numerics.precision import exact_matmul

METHODS = ("auto", "structured", "jacobian", "vjp-jvp")


@dataclass
class NTK:
    """An empirical NTK: `total` (N1, N2), `blocks` {block: (N1, N2)} summing to it (empty when
    blocks=False), the method used and the wall time in seconds."""

    total: torch.Tensor
    blocks: dict[str, torch.Tensor] = field(default_factory=dict)
    method: str = ""
    seconds: float = 0.0


def has_structured_path(model: Any) -> bool:
    """Whether `model` is an attnlab Model that declares `ntk_blocks(params, X1, X2=None)`
    (`has_structured_ntk`)."""
    return isinstance(model, Model) and model.has_structured_ntk


def empirical(model: Any, X: torch.Tensor, X2: torch.Tensor | None = None, params: Params | None = None,
              method: str = "auto", dtype: torch.dtype | None = None, blocks: bool = True,
              max_memory: float | None = None) -> NTK:
    """The empirical NTK K(X, X2) (N1, N2) of `model` at `params` (K(X, X) when X2 is None).

    model: an attnlab Model, a torch.nn.Module (params default to its own) or a function
    f(params, X) -> (N,). X (N1, ...), X2 (N2, ...): inputs with the batch axis first. dtype: cast
    parameters and inputs (e.g. torch.float64). max_memory: bound in bytes for the generic paths'
    working memory (default 2 GiB), which chooses their chunk sizes."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: allowed are {', '.join(METHODS)}")
    if max_memory is not None and max_memory <= 0:
        raise ValueError(f"max_memory = {max_memory}: must be a positive number of bytes")
    budget = float(max_memory or DEFAULT_MAX_MEMORY)
    target = as_target(model, params, dtype)
    X = X.to(dtype=dtype) if dtype is not None else X
    X2 = X2.to(dtype=dtype) if (dtype is not None and X2 is not None) else X2
    if method == "structured" and not has_structured_path(model):
        raise ValueError(f"method = 'structured': {type(model).__name__} has no ntk_blocks; "
                         "use 'jacobian', 'vjp-jvp' or 'auto'")
    start = time.perf_counter()
    with exact_matmul(), torch.no_grad():
        if method in ("auto", "structured") and has_structured_path(model):
            used, kernels = "structured", model.ntk_blocks(target.params, X, X2)
        else:
            used, kernels = _generic(target, X, X2, method, budget, blocks)
    total = sum(kernels.values()) if "total" not in kernels else kernels["total"]
    block_kernels = {k: v for k, v in kernels.items() if k != "total"} if blocks else {}
    return NTK(total, block_kernels, used, time.perf_counter() - start)


def _generic(target, X, X2, method, budget, blocks) -> tuple[str, dict[str, torch.Tensor]]:
    n1, n2 = X.shape[0], (X if X2 is None else X2).shape[0]
    fp = footprint(target, X[0])
    nblocks = len(target.blocks) if blocks else 1
    if method == "jacobian":
        plan = plan_jacobian(fp, n1, n2, budget, nblocks)
    elif method == "vjp-jvp":
        plan = plan_vjp_jvp(fp, n1, n2, budget, nblocks)
    else:
        plan = choose_plan(fp, n1, n2, budget, nblocks)
    with torch.enable_grad():
        if plan.method == "jacobian":
            return plan.method, jacobian_ntk(target, X, X2, chunk=max(plan.chunk1, plan.chunk2),
                                             blocks=blocks)
        return plan.method, vjp_jvp_ntk(target, X, X2, chunk1=plan.chunk1, chunk2=plan.chunk2,
                                        blocks=blocks)
