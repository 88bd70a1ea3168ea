"""Sweep files: a base config, axes to vary, and their expansion into validated run configs.

A sweep file (YAML) reads

    name: width-vs-samples
    base: {model: {m: 4}, data: {n: 40, K: 64}, train: {steps: 20}}   # a partial RunConfig
    axes: {model.m: [4, 8, 16], train.method: [gd, projgd]}            # cartesian product
    zip_axes: {data.n: [40, 80, 160], model.m: [6, 8, 10]}             # varied together
    seeds: 3                                                           # seeds 0, 1, 2 (or a list)

Runs are ordered as the product of the axes (declaration order, the last varying fastest), then the
zipped rows, then the seeds (fastest, so runs differing only by seed are neighbours). Every config
is validated by :func:`expand` before anything runs; an error names the field as written in the
sweep file, e.g. ``axes.model.m[2] = 'x': Input should be a valid integer``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from attnlab.config import (ConfigError, Plugins, RunConfig, Strict, apply_overrides, describe_validation_error,
                            parse_config, read_yaml)


Axis = Annotated[list[Any], Field(min_length=1)]
MAX_RUNS = 100_000   # runs one grid may describe (counted from the axes before anything is expanded)


def check_plain_name(name: str) -> str:
    """`name` when it can name a file inside a folder (no folder part, not empty, '.' or '..'),
    else ValueError: table and result names come from user files and must stay under --root/--out."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError("must be a plain file name: not empty, '.' or '..', without '/' or '\\'")
    return name


class SweepSpec(Strict):
    """A grid of runs: `base` with each combination of `axes` x `zip_axes` rows x `seeds` applied.
    plugins: modules imported first (attnlab.config.plugins), e.g. one that defines a model."""

    name: str = "sweep"
    base: dict[str, Any] = {}
    axes: dict[str, Axis] = {}
    zip_axes: dict[str, Axis] = {}
    seeds: list[int] | None = None
    plugins: Plugins = []

    _plain_name = field_validator("name")(check_plain_name)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number of seeds k (seeds 0..k-1) or a list of seeds")
        if isinstance(value, int):
            if value < 1:
                raise ValueError("a number of seeds must be at least 1")
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("needs at least one seed")
            if len(set(value)) != len(value):
                raise ValueError("seeds must be distinct")
        return value

    @field_validator("zip_axes")
    @classmethod
    def _equal_lengths(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        lengths = {field: len(values) for field, values in value.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip_axes lists must have equal lengths (got {lengths})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        both = sorted(set(self.axes) & set(self.zip_axes))
        if both:
            raise ValueError(f"{', '.join(both)} appear in both axes and zip_axes")
        if self.seeds is not None and ("seed" in self.axes or "seed" in self.zip_axes):
            raise ValueError("seed is given both as an axis and as seeds; keep one")
        return self

    @property
    def size(self) -> int:
        """Number of runs the grid describes."""
        count = 1
        for values in self.axes.values():
            count *= len(values)
        if self.zip_axes:
            count *= len(next(iter(self.zip_axes.values())))
        return count * len(self.seeds or [None])


def parse_sweep(raw: Any, name: str = "sweep") -> SweepSpec:
    """Validate a sweep mapping into a :class:`SweepSpec`, raising a one-line :class:`ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a sweep must be a mapping with base/axes/zip_axes/seeds/name, "
                          f"not {type(raw).__name__}")
    raw = {"name": name, **raw}
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe_sweep_error(error)) from None


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (its name defaults to the file's stem)."""
    path = Path(path)
    raw = read_yaml(path, "sweep file")
    if raw is None:
        raise ConfigError(f"sweep file {str(path)!r} is empty: give at least base or axes")
    return parse_sweep(raw, name=path.stem)


def _describe_sweep_error(error: ValidationError) -> str:
    return describe_validation_error(error, SweepSpec, name=None,
                                     wording={"too_short": "an axis needs at least one value"})


def _validate(raw: dict[str, Any], where: str) -> RunConfig:
    """parse_config, with the error prefixed by where in the sweep file it comes from."""
    try:
        return parse_config(raw)
    except ConfigError as error:
        raise ConfigError(f"{where}{error}") from None


def _check_axis_value(base: dict[str, Any], field: str, value: Any, where: str,
                      others: dict[str, list[Any]]) -> None:
    """Raise if `value` itself is wrong for `field` (unknown field, wrong type, out of range).

    A value that some value of another axis makes valid (an odd width with paired: false) passes
    here; errors of other fields are left to the check of whole combinations.
    """
    try:
        parse_config(apply_overrides(base, {field: value}))
    except ConfigError as error:
        for other, values in others.items():
            for other_value in values:
                try:
                    parse_config(apply_overrides(base, {field: value, other: other_value}))
                    return
                except ConfigError:
                    pass
        own = [line for line in str(error).split("; ") if line.startswith((f"{field} = ", f"{field}."))]
        if own:
            first = own[0].removeprefix(f"{field} = ")
            raise ConfigError(f"{where} = {first}" if first is not own[0] else f"{where}: {own[0]}") from None


def expand(spec: SweepSpec) -> list[RunConfig]:
    """All run configs of the grid, validated, in sweep order; raises ConfigError naming the field.

    A grid of more than MAX_RUNS runs is refused first. The base is checked alone, then every axis value on top of the base, then every combination
    (for errors that only a combination produces, e.g. an odd width with paired initialisation).
    Duplicate configs (the same run reached twice) are kept once.
    """
    if spec.size > MAX_RUNS:
        raise ConfigError(f"the grid has {spec.size} runs; at most {MAX_RUNS} in one sweep: split it into "
                          "several sweep files")
    _validate(spec.base, "base.")
    for section, axes in (("axes", spec.axes), ("zip_axes", spec.zip_axes)):
        for field, values in axes.items():
            for i, value in enumerate(values):
                others = {f: v for f, v in (spec.axes | spec.zip_axes).items() if f != field}
                _check_axis_value(spec.base, field, value, f"{section}.{field}[{i}]", others)
    axis_rows = list(itertools.product(*spec.axes.values()))
    zip_rows = list(zip(*spec.zip_axes.values())) or [()]
    seeds = spec.seeds if spec.seeds is not None else [None]
    configs: dict[str, RunConfig] = {}
    for axis_values in axis_rows:
        for zip_values in zip_rows:
            for seed in seeds:
                overrides = dict(zip(spec.axes, axis_values)) | dict(zip(spec.zip_axes, zip_values))
                if seed is not None:
                    overrides["seed"] = seed
                config = _validate(apply_overrides(spec.base, overrides), f"run {_short(overrides)}: ")
                configs.setdefault(config.model_dump_json(), config)
    return list(configs.values())


def _short(overrides: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in overrides.items()) + "}"
