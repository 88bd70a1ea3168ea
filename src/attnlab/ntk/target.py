"""What an NTK is taken of: a function f(params, X) -> (N,) with a dict of parameters.

`as_target` accepts an attnlab model (params dict + `model.forward`), any `torch.nn.Module` (through
`torch.func.functional_call`, its named parameters are the blocks) or a plain callable f(params, X),
and returns one :class:`Target`, so the generic NTK paths see a single interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.func import functional_call

from attnlab.models.base import Model

Params = dict[str, torch.Tensor]
Function = Callable[[Params, torch.Tensor], torch.Tensor]


@dataclass
class Target:
    """f(params, X (N, ...)) -> (N,), its parameters (one block per key) and the original object."""

    function: Function
    params: Params
    source: Any

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def single(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """f at one input x (no batch axis): a 0-d tensor (what vmap over per-sample transforms needs)."""
        return self.function(params, x.unsqueeze(0)).reshape(())


def as_target(model: Any, params: Params | None = None, dtype: torch.dtype | None = None) -> Target:
    """Wrap `model` (attnlab Model, nn.Module or callable f(params, X)) with its parameters.

    `params` is required for attnlab models and plain functions (e.g. `model.init(seed)`); for a
    module it defaults to its own named parameters. With `dtype`, the parameters are cast (the module
    itself is left untouched)."""
    if isinstance(model, torch.nn.Module):
        if params is None:
            params = {k: v.detach() for k, v in model.named_parameters()}

        def function(p: Params, X: torch.Tensor) -> torch.Tensor:
            return functional_call(model, p, (X,)).reshape(X.shape[0])
    elif isinstance(model, Model):
        function = model.forward
    elif callable(model):
        function = model
    else:
        raise TypeError(f"model = {type(model).__name__}: expected an attnlab Model, a torch.nn.Module "
                        "or a callable f(params, X) -> (N,)")
    if params is None:
        raise ValueError("params = None: an attnlab model or a plain function needs its parameter dict "
                         "(e.g. params=model.init(seed))")
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params = {type(params).__name__}: expected a non-empty dict of tensors")
    params = {k: v.detach().to(dtype=dtype or v.dtype) for k, v in params.items()}
    return Target(function, params, model)
