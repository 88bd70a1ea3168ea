"""Model families. `build_model` turns a validated model config into a model for inputs of dimension d.

Every module of this package is imported here, and each model class registers itself by its
config class (`Model.config_class`), so a new model is one file here plus its config class in
attnlab.config.
"""

from __future__ import annotations

import importlib
import pkgutil

from attnlab.models.base import MODELS, Model, Params

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

from attnlab.models.indrnn import IndRNN  # noqa: E402  (re-exported names)
from attnlab.models.kernel_transformer import KernelTransformer  # noqa: E402
from attnlab.models.shallow_encoder import ShallowEncoder  # noqa: E402


def build_model(config, d: int, T: int | None = None, outputs: int = 1) -> Model:
    """The model described by `config` (a model section of RunConfig) for tokens of dimension d,
    sequences of length T and targets with `outputs` columns (1: scalar targets)."""
    if config.name not in MODELS:
        raise ValueError(f"model.name = {config.name!r}: no model class registered "
                         f"(registered: {', '.join(MODELS)})")
    return MODELS[config.name].from_config(config, d=d, T=T, outputs=outputs)


__all__ = ["MODELS", "Model", "Params", "KernelTransformer", "ShallowEncoder", "IndRNN", "build_model"]
