"""Peak memory of one computation, e.g. one forward and backward pass of a model.

On CUDA the caching allocator's own peak statistic is used. On the CPU, where torch keeps no such
statistic, every tensor an operator returns is watched: its storage counts as live from the first
tensor that shows it until the last tensor viewing it is freed (PyTorch keeps a tensor's Python
object alive as long as C++ holds it, e.g. saved for backward). Memory allocated before the call
(inputs, parameters) is not counted: the result is the peak of what the computation adds.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from attnlab.models.base import Model, Params


class _LiveStorages(TorchDispatchMode):
    """Counts the bytes of storages created inside the mode that are still alive; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.views: dict[int, int] = {}      # storage data_ptr -> number of live tensors viewing it
        self.sizes: dict[int, int] = {}
        self.preexisting: set[int] = set()

    def watch_existing(self, tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            self.preexisting.add(t.untyped_storage().data_ptr())

    def _release(self, key: int) -> None:
        self.views[key] -= 1
        if self.views[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.views[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in self.preexisting:
                continue
            if key not in self.views:
                self.views[key], self.sizes[key] = 0, storage.nbytes()
                self.live += self.sizes[key]
                self.peak = max(self.peak, self.live)
            self.views[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def peak_memory_bytes(fn: Callable[[], Any], device: str | torch.device = "cpu",
                      inputs: list[torch.Tensor] | None = None) -> int:
    """Peak bytes allocated by `fn()` beyond what existed before (the result is dropped).

    `inputs`: tensors that exist before the call (their storages are never counted on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        del result
        return int(torch.cuda.max_memory_allocated(device) - before)
    tracker = _LiveStorages()
    tracker.watch_existing(inputs or [])
    with tracker:
        result = fn()
        del result
    return int(tracker.peak)


def training_step_peak_memory(model: Model, params: Params, X: torch.Tensor, y: torch.Tensor,
                              loss: str = "mse", autograd: bool = False) -> int:
    """Peak bytes of one full forward and backward pass (loss and gradient) of `model` on (X, y).

    autograd=False measures the model's own `loss_and_grad` (what the trainers run); autograd=True
    the generic autograd path of the Model base class."""
    step = (lambda: Model.loss_and_grad(model, params, X, y, loss)) if autograd else \
        (lambda: model.loss_and_grad(params, X, y, loss))
    return peak_memory_bytes(step, X.device, inputs=[X, y, *params.values()])
