"""Model families. `build_model` turns a validated model config into a model for inputs of dimension d."""

from __future__ import annotations

from attnlab.models.base import Model, Params
from attnlab.models.indrnn import IndRNN
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.models.shallow_encoder import ShallowEncoder


def build_model(config, d: int, T: int | None = None, outputs: int = 1) -> Model:
    """The model described by `config` (a model section of RunConfig) for tokens of dimension d,
    sequences of length T and targets with `outputs` columns (1: scalar targets)."""
    if config.name == "kernel-transformer":
        return KernelTransformer(d=d, m=config.m, activation_name=config.activation, paired=config.paired)
    if config.name == "shallow-encoder":
        if T is None:
            raise ValueError("model.name = 'shallow-encoder': build_model needs the sequence length T")
        if config.outputs != "auto" and config.outputs != outputs:
            raise ValueError(f"model.outputs = {config.outputs}: the data has {outputs} target column(s); "
                             "use outputs: auto or match the data")
        return ShallowEncoder(d=d, T=T, d_m=config.d_m, phi=config.phi, scaling=config.scaling,
                              init=config.init, outputs=outputs)
    if config.name == "indrnn":
        return IndRNN(d=d, m=config.m, activation_name=config.activation, gain=config.gain,
                      paired=config.paired)
    raise ValueError(f"model.name = {config.name!r}: no builder registered")


__all__ = ["Model", "Params", "KernelTransformer", "ShallowEncoder", "IndRNN", "build_model"]
