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

import pandas as pd
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


def peak_memory_against_length(T_values: list[int], m: int = 64, batch: int = 256, seed: int = 0,
                               dtype: torch.dtype = torch.float32, device: str = "cpu") -> pd.DataFrame:
    """Peak bytes of both models on lag-(T-1) windows as T grows: one row per (T, model) with
    `forward_bytes` (output only, no autograd) and `train_step_bytes` (loss and gradient, the
    model's own training pass), for `batch` sequences of width-m models."""
    from attnlab.data.sequences import ar_lag_data
    from attnlab.models import IndRNN, KernelTransformer

    rows = []
    for T in T_values:
        if T < 2:
            raise ValueError(f"T = {T}: the lag-(T-1) task needs T >= 2")
        data = ar_lag_data(L=T - 1, seed=seed, n=batch, val_fraction=0.0).to(dtype=dtype, device=device)
        X, y = data.X_train, data.y_train
        for model in (IndRNN(d=data.d, m=m), KernelTransformer(d=data.d, m=m)):
            params = model.init(seed, dtype=dtype, device=device)
            existing = [X, y, *params.values()]

            def forward(model=model, params=params):
                with torch.no_grad():
                    return model(params, X)
            rows.append({"T": T, "model": model.name,
                         "forward_bytes": peak_memory_bytes(forward, device, inputs=existing),
                         "train_step_bytes": training_step_peak_memory(model, params, X, y)})
    return pd.DataFrame(rows)
