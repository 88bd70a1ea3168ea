"""What every attnlab model provides.

A model is a pure function `forward(params, X)` of a parameter dict and a batch of sequences
X (B, T, d), returning one scalar per sequence (B,). It also knows how to initialise its parameters
from a seed, which parameter blocks it has (each with the head / unit index first, so the trainers
can project per head), and the gradient of a squared loss. Models know nothing of trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.func import grad_and_value

from attnlab.models.losses import squared_loss

Params = dict[str, torch.Tensor]

MODELS: dict[str, type["Model"]] = {}
"""Model classes by the `name` of their config class; every subclass that sets `config_class`
registers itself here on definition, so `build_model` needs no list of models."""


def check_sizes(d: int, m: int, paired: bool) -> None:
    """Refuse a non-positive token dimension or width, and an odd width with paired initialisation."""
    if d <= 0:
        raise ValueError(f"d = {d}: the token dimension must be a positive integer")
    if m <= 0:
        raise ValueError(f"m = {m}: the width must be a positive integer")
    if paired and m % 2:
        raise ValueError(f"m = {m}: paired initialisation needs an even width")


@dataclass(frozen=True)
class SampleFlops:
    """Floating-point operations (2 per multiply-add) on one sequence: `forward` computes the output,
    `gradient` the output and the gradient of the loss (forward and backward pass)."""

    forward: float
    gradient: float


class Model:
    """Base class: subclasses set `config_class`, `blocks`, `radius_keys`, `width` and implement
    `from_config`, `init`, `forward`, and `sample_flops` (the arithmetic of one sequence: the cost
    model of `attnlab reproduce --dry-run`).

    What else a model can do it declares here, and the recorders and the NTK engine read only these
    declarations: `sequence_block`, `has_structured_ntk` (then `ntk_blocks`), `has_forward_state`
    (then `forward_state`), `has_output_gradient_norms` (then `output_gradient_norms`, and
    `smoothness_bound` where it has an analytic bound)."""

    config_class: ClassVar[type]   # its section of the run config (attnlab.config), tagged by `name`
    name: ClassVar[str]
    blocks: ClassVar[tuple[str, ...]]
    radius_keys: ClassVar[dict[str, str]] = {}  # block -> field of TrainConfig.radius
    default_loss: ClassVar[str] = "mse"
    sequence_block: ClassVar[str | None] = None   # the block that mixes positions (E4 reports its gradient norm)
    has_structured_ntk: ClassVar[bool] = False
    has_forward_state: ClassVar[bool] = False
    has_output_gradient_norms: ClassVar[bool] = False
    has_run_axis: ClassVar[bool] = False   # forward_runs / loss_and_grad_runs take stacked runs
    width: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config_class = cls.__dict__.get("config_class")
        if config_class is not None:
            cls.name = config_class.model_fields["name"].default
            MODELS[cls.name] = cls

    @classmethod
    def from_config(cls, config: Any, d: int, T: int | None = None, outputs: int = 1) -> "Model":
        """The model of a validated `config` (an instance of `config_class`) for tokens of
        dimension d, sequences of length T and targets with `outputs` columns (1: scalar)."""
        raise NotImplementedError

    def init(self, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Params:
        raise NotImplementedError

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_flops(self, T: int) -> SampleFlops:
        """FLOPs of the forward pass and of the loss gradient on one sequence of T tokens."""
        raise NotImplementedError

    def ntk_pair_flops(self, T: int) -> float:
        """FLOPs of one entry of the structured empirical NTK (`ntk_blocks`) from the per-sample
        features; 0 for a model without one."""
        return 0.0

    def ntk_blocks(self, params: Params, X1: torch.Tensor, X2: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The exact empirical NTK per parameter block, {block: (N1, N2)} on X1 (N1, T, d) and X2
        (N2, T, d) (X1 when None), without per-sample gradients; where `has_structured_ntk`."""
        raise NotImplementedError(f"model {self.name!r} has no structured NTK")

    def forward_state(self, params: Params, X: torch.Tensor) -> Any:
        """The forward pass on X (B, T, d) with its read-out features `r`, attention logits `L` and
        attention `S` (B, T, T) and outputs `f`; where `has_forward_state`."""
        raise NotImplementedError(f"model {self.name!r} exposes no features or attention")

    def output_gradient_norms(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """||grad_theta f(X_b)|| for every sample of X (B, T, d): (B,); where `has_output_gradient_norms`."""
        raise NotImplementedError(f"model {self.name!r} has no per-sample gradient norm")

    def smoothness_bound(self, params: Params, token_norm: float) -> float | None:
        """An analytic bound on the per-sample output-gradient norm over all sequences whose tokens
        have norm <= token_norm; None for a model without one."""
        return None

    def forward_runs(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f of S stacked runs, params (S, ...), X (S, B, T, d): (S, B); where `has_run_axis` (the
        trainer then uses it instead of vmap)."""
        raise NotImplementedError(f"model {self.name!r} takes no run axis")

    def loss_and_grad_runs(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                           loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """`loss_and_grad` of S stacked runs: losses (S,) and gradients (S, ...); where `has_run_axis`."""
        raise NotImplementedError(f"model {self.name!r} takes no run axis")

    def loops_over_runs(self, params: Params, X: torch.Tensor) -> bool:
        """Whether stacked runs (params (S, ...), X (S, n, T, d)) should be computed one run at a time
        rather than vmapped: true where a compiled per-run kernel serves them."""
        return False

    def __call__(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        return self.forward(params, X)

    def loss_and_grad(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                      loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """(loss, gradient dict) at `params` on (X (B,T,d), y (B,)); autograd unless overridden."""
        grads, value = grad_and_value(lambda p: squared_loss(self.forward(p, X), y, loss))(params)
        return value.detach(), grads
