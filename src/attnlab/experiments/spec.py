"""Experiments declared as data: a base config, the axes and seeds of each preset, and the claims.

An experiment file (YAML, e.g. arda2026.yaml) holds a paper's experiments. Each experiment is

    base:     a partial RunConfig shared by every run
    x:        the swept config field the claims are fitted against (e.g. model.m)
    series:   optional named variants drawn on one figure (each with its own base, or a width
              rule log_width: k meaning model.m = 2 ceil(k log n / 2) for each data.n)
    claims:   metric (a column of the results table), fit kind, and the prediction: a slope
              (`predicted`), a sign (`direction`), or nothing (a plain measurement)
    presets:  per preset (quick, paper): base overrides, axes, seeds, series overrides

`sweeps(experiment, preset)` turns one into validated sweep specs, one per series.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from attnlab.config import ConfigError, apply_overrides
from attnlab.sweep.grid import SweepSpec, parse_sweep

PRESETS = ("quick", "paper")
Direction = Literal["negative", "positive"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Claim(Strict):
    """One judged statement: `metric` against the experiment's x, fitted as `fit`.

    source "curves" fits the metric against the training step instead (one series per value of
    the experiment's x; "exp": linear convergence); `order` judges series names ordered by the
    metric (smallest first) instead of a fit.
    """

    metric: str
    quantity: str
    fit: Literal["power", "log", "exp"] = "power"
    source: Literal["runs", "curves"] = "runs"
    order: list[str] | None = None
    predicted: Union[float, dict[str, float], None] = None
    direction: Union[Direction, dict[str, Direction], None] = None
    prediction: Union[str, dict[str, str], None] = None

    @model_validator(mode="after")
    def _one_prediction(self) -> "Claim":
        both = self.predicted is not None and self.direction is not None
        if both and not (isinstance(self.predicted, dict) and isinstance(self.direction, dict)):
            raise ValueError("give predicted (a slope) or direction (a sign), not both "
                             "(both only as mappings from series to prediction)")
        return self


class Series(Strict):
    """A variant of the experiment: its own base overrides, or a width growing like log n."""

    base: dict[str, Any] = {}
    log_width: float | None = Field(default=None, gt=0)


class Preset(Strict):
    base: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    seeds: Union[int, list[int]] = 3
    series: dict[str, Series] = {}


class Experiment(Strict):
    title: str
    claim: str
    base: dict[str, Any] = {}
    x: str
    series: dict[str, Series] = {}
    claims: list[Claim] = Field(min_length=1)
    notes: str = ""
    presets: dict[Literal["quick", "paper"], Preset]


class ExperimentFile(Strict):
    paper: str
    title: str
    experiments: dict[str, Experiment]


def load_experiments(path: str | Path) -> ExperimentFile:
    """Read and validate an experiment file; errors name the field."""
    path = Path(path)
    try:
        return ExperimentFile.model_validate(yaml.safe_load(Path(path).read_text()))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"experiment file {path.name}: {problems}") from None


def log_width(n: int, k: float) -> int:
    """The even width 2 ceil(k log n / 2) (paired initialisation needs an even m)."""
    return 2 * math.ceil(k * math.log(n) / 2)


def sweeps(key: str, experiment: Experiment, preset: str) -> dict[str, SweepSpec]:
    """The validated sweep of every series (one unnamed series "" when none is declared)."""
    if preset not in experiment.presets:
        raise ConfigError(f"preset = {preset!r}: experiment {key} has {', '.join(experiment.presets)}")
    chosen = experiment.presets[preset]
    base = _merge(experiment.base, chosen.base)
    series = {name: chosen.series.get(name, s) for name, s in experiment.series.items()} or {"": Series()}
    specs = {}
    for name, variant in series.items():
        axes, zip_axes = dict(chosen.axes), {}
        if variant.log_width is not None:
            ns = axes.pop("data.n", None)
            if ns is None:
                raise ConfigError(f"{key}.series.{name}.log_width: needs a data.n axis in preset {preset}")
            zip_axes = {"data.n": ns, "model.m": [log_width(n, variant.log_width) for n in ns]}
        raw = {"base": _merge(base, variant.base), "axes": axes, "zip_axes": zip_axes, "seeds": chosen.seeds}
        specs[name] = parse_sweep(raw, name=f"{key}-{preset}" + (f"-{name}" if name else ""))
    return specs


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two nested config dicts (overrides win)."""
    flat: dict[str, Any] = {}
    _flatten(overrides, "", flat)
    return apply_overrides(base, flat)


def _flatten(mapping: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out[f"{prefix}{key}"] = value
