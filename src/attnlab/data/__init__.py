"""Data generators. `build_data` turns a validated data config and a run seed into a Dataset."""

from __future__ import annotations

from attnlab.data.dataset import Dataset
from attnlab.data.sequences import ar_lag_data, series_data
from attnlab.data.teacher import teacher_data


def build_data(config, seed: int) -> Dataset:
    """The dataset described by `config` (a data section of RunConfig); float64 on the CPU."""
    data_seed = seed if config.seed is None else config.seed
    if config.name == "teacher":
        return teacher_data(config.n, config.T, config.d, data_seed, K=config.K, anchors=config.anchors,
                            nu=(config.nu_c, config.nu_u, config.nu_w), activation_name=config.activation,
                            val_fraction=config.val_fraction, noise=config.noise)
    if config.name == "ar-lag":
        return ar_lag_data(config.L, data_seed, n=config.n, coefficient=config.coefficient,
                           noise_variance=config.noise_variance, burn_in=config.burn_in,
                           val_fraction=config.val_fraction, clip_tokens=config.clip_tokens)
    if config.name == "series":
        return series_data(config.recording, config.L, data_seed, n=config.n, val_fraction=config.val_fraction,
                           clip_tokens=config.clip_tokens)
    raise ValueError(f"data.name = {config.name!r}: no generator registered")


__all__ = ["Dataset", "build_data"]
