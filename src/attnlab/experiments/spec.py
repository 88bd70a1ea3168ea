"""Experiments declared as data: a base config, the axes and seeds of each preset, and the claims.

An experiment file (YAML, e.g. arda2026.yaml) holds a paper's experiments. Each experiment is

    base:     a partial RunConfig shared by every run
    x:        the swept config field the claims are fitted against (e.g. model.m)
    series:   optional named variants drawn on one figure (each with its own base, or a width
              rule log_width: k meaning model.m = 2 ceil(k log n / 2) for each data.n)
    claims:   metric (a column of the results table), fit kind, and the prediction: a slope
              (`predicted`), a sign (`direction`), a bound independent of x (`does_not: grow`
              with a slope `tolerance`, judged one-sided), or nothing (a plain measurement); or an
              ordering of series (`order`), a bound on a mean / ratio (`at_least`, `at_most`), or
              a bound on every run (`every_at_most`); fits and orderings use the median over
              seeds unless `aggregate: mean`
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

from pydantic import AfterValidator, Field, ValidationError, model_validator

from attnlab.config import ConfigError, Strict, apply_overrides, describe_validation_error, flatten, read_yaml
from attnlab.sweep.grid import SweepSpec, check_plain_name, parse_sweep

PRESETS = ("quick", "paper")
Direction = Literal["negative", "positive"]
NoChange = Literal["grow", "fall"]


Bound = Union[float, dict[str, float], None]
AxisValue = Union[float, Literal["smallest", "largest"]]


class Claim(Strict):
    """One judged statement: `metric` against the experiment's x, fitted as `fit`.

    source "curves" fits the metric against the training step instead (one series per value of
    the experiment's x; "exp": linear convergence); `order` judges series names ordered by the
    metric (smallest first) instead of a fit, over all runs or only those at x = `at`.
    `at_least` / `at_most` bound the metric's mean over seeds at x = `at`, or the ratio of its
    means at the two x values of `between` ([x0, x1]: mean at x1 / mean at x0), per series when
    given as mappings. `tolerance` judges `predicted` as a band (predicted +- tolerance: the whole
    interval inside is consistent, wholly outside inconsistent). `does_not` ("grow" / "fall", per
    series as a mapping) judges a bound independent of x one-sided on the slope's interval with the
    slope `tolerance` (grow: consistent when the interval lies below +tolerance, inconsistent when
    it lies wholly above). `every_at_most` checks every run's value against a number (e.g. a
    measurement over its analytic bound <= 1). `bound_metric` names a column drawn with the fit
    (each run's analytic bound on the metric). `series` restricts the claim to those series (all by
    default). `level` draws a horizontal reference line ({value, label}) on the figure.
    `aggregate` ("median" or "mean"; default median) is what a fit is fitted to and an ordering
    compares at each x: the median of the runs or their mean (as a paper plotting means does); a
    bound always judges means.
    """

    metric: str
    quantity: str
    fit: Literal["power", "log", "exp"] = "power"
    source: Literal["runs", "curves"] = "runs"
    order: list[str] | None = None
    at: AxisValue | None = None
    between: tuple[AxisValue, AxisValue] | None = None
    at_least: Bound = None
    at_most: Bound = None
    predicted: Union[float, dict[str, float], None] = None
    direction: Union[Direction, dict[str, Direction], None] = None
    prediction: Union[str, dict[str, str], None] = None
    tolerance: Annotated[float, Field(gt=0)] | None = None
    does_not: Union[NoChange, dict[str, NoChange], None] = None
    every_at_most: float | None = None
    bound_metric: str | None = None
    series: list[str] | None = None
    level: "Level | None" = None
    aggregate: Literal["median", "mean"] | None = None

    @model_validator(mode="after")
    def _one_prediction(self) -> "Claim":
        both = self.predicted is not None and self.direction is not None
        if both and not (isinstance(self.predicted, dict) and isinstance(self.direction, dict)):
            raise ValueError("give predicted (a slope) or direction (a sign), not both "
                             "(both only as mappings from series to prediction)")
        bounded = self.at_least is not None or self.at_most is not None
        if bounded and (self.at is None) == (self.between is None):
            raise ValueError("at_least / at_most need exactly one of at (an x value) and between ([x0, x1])")
        if self.between is not None and not bounded:
            raise ValueError("between: give at_least or at_most (the bound on the ratio)")
        if self.between is not None and self.between[0] == self.between[1]:
            raise ValueError(f"between: {list(self.between)} names one x value twice; give two different ones")
        if self.at is not None and not bounded and self.order is None:
            raise ValueError("at: give at_least / at_most (a bound on the mean) or order (an ordering at x)")
        if (bounded or self.order is not None) and (self.predicted is not None or self.direction is not None
                                                     or self.does_not is not None):
            raise ValueError("a bound or an ordering takes no predicted / direction (those judge a fitted slope)")
        if self.does_not is not None:
            if self.tolerance is None:
                raise ValueError("does_not: needs a tolerance (the largest slope the bound allows, e.g. 0.05)")
            others = [v for v in (self.predicted, self.direction) if v is not None]
            if others and not all(isinstance(v, dict) for v in (*others, self.does_not)):
                raise ValueError("does_not judges the slope on its own: give no predicted / direction "
                                 "(both only as mappings from series to prediction)")
        if self.tolerance is not None and self.predicted is None and self.does_not is None:
            raise ValueError("tolerance: needs predicted (the slope it is a band around) or does_not")
        if self.every_at_most is not None and (bounded or self.order is not None or self.predicted is not None
                                               or self.direction is not None or self.does_not is not None):
            raise ValueError("every_at_most: a bound on every run takes no other prediction")
        if bounded and self.order is not None:
            raise ValueError("give order or a bound (at_least / at_most), not both")
        if bounded and self.aggregate == "median":
            raise ValueError("aggregate = 'median': a bound (at_least / at_most) judges the mean over seeds; "
                             "give aggregate: mean or leave it out")
        if self.every_at_most is not None and self.aggregate is not None:
            raise ValueError("aggregate: every_at_most judges every run, not an aggregate; leave it out")
        return self

    @property
    def centre(self) -> Literal["median", "mean"]:
        """The aggregate over seeds in force: `aggregate`, else the mean for a bound, the median otherwise."""
        return self.aggregate or ("mean" if self.kind == "bound" else "median")

    @property
    def kind(self) -> Literal["order", "bound", "every", "fit"]:
        """How the claim is judged: an ordering of series, a bound on a mean or ratio, a bound on
        every run, or a fit."""
        if self.order is not None:
            return "order"
        if self.every_at_most is not None:
            return "every"
        return "bound" if self.at_least is not None or self.at_most is not None else "fit"


class Level(Strict):
    """A horizontal reference line on a claim's figure, e.g. a task's best achievable loss."""

    value: float
    label: str


Claim.model_rebuild()


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
    paper: str
    title: str
    experiments: dict[Annotated[str, AfterValidator(check_plain_name)], Experiment]
    """By key; a key names the experiment's folder of results, so it is a plain file name."""


def load_experiments(path: str | Path) -> ExperimentFile:
    """Read and validate an experiment file; errors name the field."""
    path = Path(path)
    raw = read_yaml(path, "experiment file")
    try:
        return ExperimentFile.model_validate(raw)
    except ValidationError as error:
        problems = describe_validation_error(error, ExperimentFile, name=None)
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
    """Claims on runs may only name declared series, and only x values the preset sweeps."""
    swept = experiment.presets[preset].axes.get(experiment.x)
    for i, claim in enumerate(experiment.claims):
        for field in ("predicted", "direction", "prediction", "at_least", "at_most", "does_not"):
            mapping = getattr(claim, field)
            by_series = isinstance(mapping, dict) and claim.source == "runs"   # curves: keyed by x values
            unknown = sorted(set(mapping) - set(experiment.series)) if by_series else []
            if unknown:
                raise ConfigError(f"{key}.claims.{i}.{field}: {unknown} are not series of {key}; "
                                  f"its series are {sorted(experiment.series)}")
        unknown = sorted(set(claim.series or []) - set(experiment.series))
        if unknown:
            raise ConfigError(f"{key}.claims.{i}.series: {unknown} are not series of {key}; "
                              f"its series are {sorted(experiment.series)}")
        points = [claim.at] if claim.at is not None else list(claim.between or [])
        for point in points:
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
