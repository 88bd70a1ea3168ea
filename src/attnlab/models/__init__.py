"""Model families. `build_model` turns a validated model config into a model for inputs of dimension d."""

from __future__ import annotations

from attnlab.models.base import Model, Params
from attnlab.models.indrnn import IndRNN
from attnlab.models.kernel_transformer import KernelTransformer


def build_model(config, d: int) -> Model:
    """The model described by `config` (a model section of RunConfig) for tokens of dimension d."""
    if config.name == "kernel-transformer":
        return KernelTransformer(d=d, m=config.m, activation_name=config.activation, paired=config.paired)
    if config.name == "indrnn":
        return IndRNN(d=d, m=config.m, activation_name=config.activation, gain=config.gain,
                      paired=config.paired)
    raise ValueError(f"model.name = {config.name!r}: no builder registered")


__all__ = ["Model", "Params", "KernelTransformer", "IndRNN", "build_model"]
