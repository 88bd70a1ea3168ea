"""Experiments declared as data: a base config, the axes and seeds of each preset, and the claims.

An experiment file (YAML, e.g. arda2026.yaml) holds a paper's experiments. Each experiment is

    base:     a partial RunConfig shared by every run
    x:        the swept config field the claims are fitted against (e.g. model.m)
    series:   optional named variants drawn on one figure (each with its own base, or a width
              rule log_width: k meaning model.m = 2 ceil(k log n / 2) for each data.n)
    claims:   what is judged, one of the kinds of claims.py: a fitted law with its predicted slope,
              sign or bound independent of x (or a plain measurement), an ordering of series, a
              bound on a mean at one x or on the ratio of means at two, or a bound on every run
    panels:   figures without verdicts: several metrics side by side against x
    figures:  figures without verdicts: panels stacked top to bottom sharing x, each one metric
              (mean over seeds, or runs' block statistics pooled) per series, e.g. a paper's figure
    presets:  per preset (quick, paper): base overrides, axes, seeds, series overrides

`sweeps(experiment, preset)` turns one into validated sweep specs, one per series.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, ValidationError

from attnlab.config import ConfigError, Plugins, Strict, apply_overrides, describe_validation_error, flatten, read_yaml
from attnlab.experiments.claims import Claim, claim_union, without_kinds
from attnlab.sweep.grid import SweepSpec, check_plain_name, parse_sweep

PRESETS = ("quick", "paper")


class Panel(Strict):
    """A figure without verdicts: several metrics (label -> column) against the experiment's x,
    fitted as `fit`, e.g. the averaged, best and last iterates side by side."""

    quantity: str
    metrics: dict[str, str] = Field(min_length=1)
    fit: Literal["power", "log", "exp"] = "power"


class FigureRow(Strict):
    """One panel of a stacked figure: `metric` against the experiment's x, one line per series: the
    mean over seeds with the band mean -/+ 1.96 standard errors; with `pooled`, `metric` names a
    summary section holding each run's block statistics (<metric>.mean, .sd, .count) and the
    panel shows every run's blocks pooled, mean -/+ 1.96 sd / sqrt(number of blocks)."""

    quantity: str
    metric: str
    pooled: bool = False
    log_y: bool = True


class StackedFigure(Strict):
    """A figure without verdicts: `rows` stacked top to bottom, sharing the x axis (linear unless
    log_x), each series labelled by `labels` (series name -> legend label) or its name. Written to
    FIGURES/<key>_<name>.png and .pdf."""

    name: str
    title: str
    rows: list[FigureRow] = Field(min_length=1)
    labels: dict[str, str] = {}
    log_x: bool = False


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
    panels: list[Panel] = []
    figures: list[StackedFigure] = []
    notes: str = ""
    presets: dict[Literal["quick", "paper"], Preset]


class ExperimentFile(Strict):
    plugins: Plugins = []
    """Modules imported first (attnlab.config.plugins), e.g. one that defines a model."""
    paper: str
    title: str
    experiments: dict[Annotated[str, AfterValidator(check_plain_name)], Experiment]
    """By key; a key names the experiment's folder of results, so it is a plain file name."""


class _PluginsFirst(Strict, extra="ignore"):
    """The `plugins` of an experiment file alone: imported before the rest is validated, as they
    may define kinds of claim."""

    plugins: Plugins = []


def rebuild_claims() -> None:
    """Make experiment files take every kind of claim in CLAIM_KINDS (after a module defined a new one)."""
    Experiment.model_fields["claims"].annotation = list[claim_union()]
    Experiment.model_rebuild(force=True)
    ExperimentFile.model_rebuild(force=True)


def load_experiments(path: str | Path) -> ExperimentFile:
    """Read and validate an experiment file; errors name the field."""
    path = Path(path)
    raw = read_yaml(path, "experiment file")
    try:
        if isinstance(raw, dict) and raw.get("plugins"):
            _PluginsFirst.model_validate(raw)
            rebuild_claims()
        return ExperimentFile.model_validate(raw)
    except ValidationError as error:
        problems = describe_validation_error(without_kinds(error), ExperimentFile, name=None)
        raise ConfigError(f"experiment file {path.name}: {problems}") from None


def log_width(n: int, k: float) -> int:
    """The even width 2 ceil(k log n / 2) (paired initialisation needs an even m)."""
    return 2 * math.ceil(k * math.log(n) / 2)


def sweeps(key: str, experiment: Experiment, preset: str) -> dict[str, SweepSpec]:
    """The validated sweep of every series (one unnamed series "" when none is declared)."""
    if preset not in experiment.presets:
        raise ConfigError(f"preset = {preset!r}: experiment {key} has {', '.join(experiment.presets)}")
    chosen = experiment.presets[preset]
    _check_claims(key, experiment, preset)
    _check_figures(key, experiment)
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


def _check_claims(key: str, experiment: Experiment, preset: str) -> None:
    """Claims may only name declared series, and only x values the preset sweeps."""
    swept = experiment.presets[preset].axes.get(experiment.x)
    for i, claim in enumerate(experiment.claims):
        for field, names in claim.named_series().items():
            unknown = sorted(set(names) - set(experiment.series))
            if unknown:
                raise ConfigError(f"{key}.claims.{i}.{field}: {unknown} are not series of {key}; "
                                  f"its series are {sorted(experiment.series)}")
        for point in claim.points():
            if swept is not None and not isinstance(point, str) and not any(
                    math.isclose(point, v, rel_tol=1e-9) for v in swept):
                raise ConfigError(f"{key}.claims.{i}: {experiment.x} = {point:g} is not swept by preset "
                                  f"{preset} ({', '.join(map(str, swept))})")


def _check_figures(key: str, experiment: Experiment) -> None:
    """A figure's labels may only name declared series."""
    for i, figure in enumerate(experiment.figures):
        unknown = sorted(set(figure.labels) - set(experiment.series))
        if unknown:
            raise ConfigError(f"{key}.figures.{i}.labels: {unknown} are not series of {key}; "
                              f"its series are {sorted(experiment.series)}")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two nested config dicts (overrides win)."""
    return apply_overrides(base, flatten(overrides, keep_empty=True))
