"""The cost model of the generic NTK paths, and the chunk sizes that keep them within a memory bound.

With P parameters, A activation elements saved by one sample's forward pass (measured once with
saved-tensor hooks), b bytes per element and N1 x N2 kernel entries:

    jacobian  (vmap over jacrev, then J1 J2^T per block)
        memory  ~ 4 c (P + A) b            c = samples per chunk (N*P when nothing is chunked)
        time    ~ (N1 + r N2) (P + A) + N1 N2 P
                  r = 1 when the Jacobians of X2 fit in memory, else one recomputation per X1 chunk
    vjp-jvp   (gradient at X_a, then a forward-mode jvp along it at every X_b)
        memory  ~ 2 ca (P + A) b + 3 ca cb A b      O(P) with ca = cb = 1
        time    ~ N1 (P + A) + B N1 N2 2 (P + A)     B = number of blocks when blocks are kept, else 1

"auto" takes the generic method with the smaller estimated time within the bound. The estimates count
elements touched, not flops, so they rank methods; they do not predict seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnlab.ntk.target import Target

DEFAULT_MAX_MEMORY = 2 * 2**30  # bytes


@dataclass(frozen=True)
class Footprint:
    """P parameters, A saved activation elements per sample, b bytes per element."""

    params: int
    activations: int
    bytes_per_element: int


def footprint(target: Target, x: torch.Tensor) -> Footprint:
    """Measure the per-sample activation memory of `target` at one input x (no batch axis)."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel()
        return t

    params = {k: v.detach().requires_grad_(True) for k, v in target.params.items()}
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        target.single(params, x)
    element = next(iter(target.params.values())).element_size()
    return Footprint(target.num_params, max(saved, 1), element)


@dataclass(frozen=True)
class Plan:
    """A generic method with its chunk sizes and estimated cost (elements; see module docstring)."""

    method: str
    chunk1: int
    chunk2: int
    time: float
    memory: float


def plan_jacobian(fp: Footprint, n1: int, n2: int, max_memory: float, blocks: int) -> Plan:
    """Chunk size and cost of Jacobian contraction."""
    per_sample = 4 * (fp.params + fp.activations) * fp.bytes_per_element
    chunk = int(max(1, min(max(n1, n2), max_memory // per_sample)))
    recompute = 1 if n2 <= chunk else math.ceil(n1 / chunk)
    time = (n1 + recompute * n2) * (fp.params + fp.activations) + n1 * n2 * fp.params
    return Plan("jacobian", min(chunk, n1), min(chunk, n2), float(time), float(chunk * per_sample))


def plan_vjp_jvp(fp: Footprint, n1: int, n2: int, max_memory: float, blocks: int) -> Plan:
    """Chunk sizes and cost of NTK-vector products (half the bound for gradients, half for jvps)."""
    b, P, A = fp.bytes_per_element, fp.params, fp.activations
    chunk1 = int(max(1, min(n1, (max_memory / 2) // (2 * (P + A) * b))))
    chunk2 = int(max(1, min(n2, (max_memory / 2) // (3 * chunk1 * A * b))))
    time = n1 * (P + A) + blocks * n1 * n2 * 2 * (P + A)
    memory = 2 * chunk1 * (P + A) * b + 3 * chunk1 * chunk2 * A * b
    return Plan("vjp-jvp", chunk1, chunk2, float(time), float(memory))


def choose_plan(fp: Footprint, n1: int, n2: int, max_memory: float, blocks: int) -> Plan:
    """The generic plan with the smaller estimated time among those within `max_memory`."""
    plans = [plan_jacobian(fp, n1, n2, max_memory, blocks), plan_vjp_jvp(fp, n1, n2, max_memory, blocks)]
    fitting = [p for p in plans if p.memory <= max_memory] or [min(plans, key=lambda p: p.memory)]
    return min(fitting, key=lambda p: p.time)
