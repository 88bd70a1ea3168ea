"""Data generators. `build_data` turns a validated data config and a run seed into a Dataset."""

from __future__ import annotations

from attnlab.data.dataset import Dataset
from attnlab.data.images import digits_data, mnist_data
from attnlab.data.random_sequences import random_sequence_data
from attnlab.data.teacher import teacher_data


def build_data(config, seed: int) -> Dataset:
    """The dataset described by `config` (a data section of RunConfig); float64 on the CPU."""
    data_seed = seed if config.seed is None else config.seed
    if config.name == "teacher":
        return teacher_data(config.n, config.T, config.d, data_seed, K=config.K, anchors=config.anchors,
                            nu=(config.nu_c, config.nu_u, config.nu_w), activation_name=config.activation,
                            val_fraction=config.val_fraction, noise=config.noise)
    if config.name == "random-sequences":
        return random_sequence_data(config.n, config.T, config.d, data_seed, token_norm=config.token_norm,
                                    norm=config.norm, val_fraction=config.val_fraction)
    if config.name == "digits":
        return digits_data(config.n, data_seed, patch=config.patch, token_norm=config.token_norm,
                           norm=config.norm, n_val=config.n_val)
    if config.name == "mnist":
        return mnist_data(config.path, config.n, data_seed, patch=config.patch, token_norm=config.token_norm,
                          norm=config.norm, n_val=config.n_val)
    raise ValueError(f"data.name = {config.name!r}: no generator registered")


__all__ = ["Dataset", "build_data"]
