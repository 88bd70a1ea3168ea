"""Data generators. `build_data` turns a validated data config and a run seed into a Dataset, through
the builder registered for the config's class (`@generates`)."""

from __future__ import annotations

import collections
from typing import Any, Callable

from attnlab.config import (ArLagDataConfig, DigitsConfig, MnistConfig, RandomSequencesConfig, SeriesDataConfig,
                            TeacherDataConfig)
from attnlab.data.dataset import Dataset, split
from attnlab.data.images import digits_data, mnist_data
from attnlab.data.random_sequences import random_sequence_data
from attnlab.data.sequences import ar_lag_data, series_data
from attnlab.data.teacher import Teacher, teacher_problem


def data_seed(config, seed: int) -> int:
    """The seed of the data: the data section's own seed if set, else the run's."""
    return seed if config.seed is None else config.seed


TEACHER_CACHE_BYTES = 2**30
_teachers: collections.OrderedDict = collections.OrderedDict()


def build_teacher(config, seed: int, device: str = "cpu") -> tuple:
    """(X (n, T, d), y (n,), Teacher) of a teacher data section, before the split, on the CPU (the
    labels computed on `device`). Cached (least recently used first out, at most
    TEACHER_CACHE_BYTES of inputs): runs of one sweep that differ only in the model reuse the data
    (callers must not modify it in place)."""
    key = (config, seed, device)
    if key in _teachers:
        _teachers.move_to_end(key)
        return _teachers[key]
    problem = teacher_problem(config.n, config.T, config.d, data_seed(config, seed), K=config.K,
                              anchors=config.anchors, nu=(config.nu_c, config.nu_u, config.nu_w),
                              activation_name=config.activation, noise=config.noise,
                              attention=config.attention, device=device)
    _teachers[key] = problem
    while sum(X.nbytes for X, _, _ in _teachers.values()) > TEACHER_CACHE_BYTES and len(_teachers) > 1:
        _teachers.popitem(last=False)
    return problem


GENERATORS: dict[str, Callable[[Any, int, str], Dataset]] = {}
"""Dataset builders by the `name` of their data config class (filled by @generates)."""


def generates(config_class: type) -> Callable:
    """Register the decorated `builder(config, seed, device) -> Dataset` for configs of
    `config_class`; `device` is where the builder may compute (most ignore it)."""
    def register(builder: Callable[[Any, int, str], Dataset]) -> Callable[[Any, int, str], Dataset]:
        GENERATORS[config_class.model_fields["name"].default] = builder
        return builder
    return register


def build_data(config, seed: int, device: str = "cpu") -> Dataset:
    """The dataset described by `config` (a data section of RunConfig); float64 on the CPU.
    `device`: where heavy generation runs (the teacher's labels), usually the run's device."""
    if config.name not in GENERATORS:
        raise ValueError(f"data.name = {config.name!r}: no generator registered")
    return GENERATORS[config.name](config, seed, device)


@generates(TeacherDataConfig)
def _teacher(config: TeacherDataConfig, seed: int, device: str) -> Dataset:
    X, y, _ = build_teacher(config, seed, device)
    return split(X, y, config.val_fraction, data_seed(config, seed))


@generates(RandomSequencesConfig)
def _random_sequences(config: RandomSequencesConfig, seed: int, device: str) -> Dataset:
    return random_sequence_data(config.n, config.T, config.d, data_seed(config, seed), token_norm=config.token_norm,
                                norm=config.norm, val_fraction=config.val_fraction)


@generates(DigitsConfig)
def _digits(config: DigitsConfig, seed: int, device: str) -> Dataset:
    return digits_data(config.n, data_seed(config, seed), patch=config.patch, token_norm=config.token_norm,
                       norm=config.norm, n_val=config.n_val)


@generates(MnistConfig)
def _mnist(config: MnistConfig, seed: int, device: str) -> Dataset:
    return mnist_data(config.path, config.n, data_seed(config, seed), patch=config.patch, token_norm=config.token_norm,
                      norm=config.norm, n_val=config.n_val)


@generates(ArLagDataConfig)
def _ar_lag(config: ArLagDataConfig, seed: int, device: str) -> Dataset:
    return ar_lag_data(config.L, data_seed(config, seed), n=config.n, coefficient=config.coefficient,
                       noise_variance=config.noise_variance, burn_in=config.burn_in,
                       val_fraction=config.val_fraction, clip_tokens=config.clip_tokens,
                       T=config.window, standardise_targets=config.standardise_targets)


@generates(SeriesDataConfig)
def _series(config: SeriesDataConfig, seed: int, device: str) -> Dataset:
    return series_data(config.recording, config.L, data_seed(config, seed), n=config.n,
                       val_fraction=config.val_fraction, clip_tokens=config.clip_tokens)


__all__ = ["GENERATORS", "Dataset", "Teacher", "build_data", "build_teacher", "data_seed", "generates"]
