"""Several runs as one computation: parameters and data stacked along a leading run axis.

Runs that differ only by seed have equally shaped parameters and data, so S of them can be stacked
(params (S, m, ...), X (S, n, T, d)) and stepped together. `Stacked` applies a per-run function to
all S runs with torch.func.vmap, which on CPU gives the same bits as S separate calls; a model whose
functions cannot be vmapped falls back to a loop over the runs.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.func import vmap

from attnlab.models.base import Params


def stack(items: list[Any]) -> Any:
    """Stack equally structured tensors / dicts / tuples of tensors along a new leading axis."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(items)
    if isinstance(first, dict):
        return {key: stack([item[key] for item in items]) for key in first}
    if isinstance(first, tuple):
        return tuple(stack(list(parts)) for parts in zip(*items))
    raise TypeError(f"cannot stack {type(first).__name__}")


def with_run_axis(item: Any) -> Any:
    """`stack([item])` without copying: a leading run axis of length 1 as a view."""
    if isinstance(item, torch.Tensor):
        return item.unsqueeze(0)
    if isinstance(item, dict):
        return {key: with_run_axis(value) for key, value in item.items()}
    if isinstance(item, tuple):
        return tuple(with_run_axis(value) for value in item)
    raise TypeError(f"cannot stack {type(item).__name__}")


def run_slice(stacked: Any, s: int) -> Any:
    """Run s of a stacked structure (inverse of `stack`)."""
    if isinstance(stacked, torch.Tensor):
        return stacked[s]
    if isinstance(stacked, dict):
        return {key: run_slice(value, s) for key, value in stacked.items()}
    if isinstance(stacked, tuple):
        return tuple(run_slice(value, s) for value in stacked)
    return stacked


def select(mask: torch.Tensor, new: Params, old: Params) -> Params:
    """Per run, `new` where mask (S,) is true and `old` elsewhere; `new` or `old` itself, uncopied,
    when every run agrees (the common case: one run, or every run going). Keep the mask on the CPU:
    deciding that is then free."""
    if mask.all():
        return new
    if not mask.any():
        return old
    return {k: torch.where(mask.to(v.device).reshape(-1, *(1,) * (v.dim() - 1)), v, old[k]) for k, v in new.items()}


class Stacked:
    """`fn(*per_run_args)` applied to S stacked runs; arguments in `shared` are passed as they are.

    Uses `batched(*args)` when given (a model's own run axis: the stacked arguments as they are),
    else vmap when it works for `fn` (tried on the first call), otherwise a Python loop; also a loop
    when `prefer_loop(*args)` says so (a model whose compiled kernel beats vmap of its PyTorch form).
    A single run is always a plain call, its results given a run axis as views.
    """

    def __init__(self, fn: Callable[..., Any], shared: tuple[int, ...] = (),
                 prefer_loop: Callable[..., bool] | None = None, batched: Callable[..., Any] | None = None):
        self.fn, self.shared, self.prefer_loop, self.batched = fn, set(shared), prefer_loop, batched
        self.vectorised: bool | None = None

    def __call__(self, runs: int, *args: Any) -> Any:
        together = runs > 1 and not (self.prefer_loop and self.prefer_loop(*args))
        if together and self.batched is not None:
            self.vectorised = True
            return self.batched(*args)
        if together and self.vectorised is not False:
            in_dims = tuple(None if i in self.shared else 0 for i in range(len(args)))
            try:
                result = vmap(self.fn, in_dims=in_dims)(*args)
                self.vectorised = True
                return result
            except Exception:
                if self.vectorised:
                    raise
                self.vectorised = False
        results = [self.fn(*(a if i in self.shared else run_slice(a, s) for i, a in enumerate(args)))
                   for s in range(runs)]
        return with_run_axis(results[0]) if runs == 1 else stack(results)
