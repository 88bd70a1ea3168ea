"""The claims of an experiment file: one class per kind, each validating its fields and judging itself.

    fit     `metric` against the experiment's x fitted as a law (`fit`: power, log or exp), its
            slope judged against a value (`predicted`, a band with `tolerance`), a sign
            (`direction`) or a bound independent of x (`does_not` grow / fall, with the slope
            `tolerance`), for all series or per series as mappings; nothing: a measurement
    order   series ordered by the metric, smallest first (`order`), over all runs or at x = `at`
    mean    the mean over seeds at x = `at` bounded by `at_least` / `at_most`
    ratio   the ratio of the means at the two x of `between` ([x0, x1]: x1 over x0) bounded
    every   every run's value at most `every_at_most`

A claim names its kind with `kind`, or the kind is read off its fields (order, every_at_most,
between, at_least / at_most / at; a fit otherwise), so experiment files need not say it. Every kind
is one class deriving from ClaimBase with a Literal `kind`: CLAIM_KINDS and the `Claim` union are
built from them, so a new kind is one class (defined after this module is imported, it joins the
experiment files' claims with `spec.rebuild_claims()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Union

import pandas as pd
from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

from attnlab.config import ConfigError, Strict, describe_validation_error
from attnlab.report import (ExperimentResult, SlopePrediction, bound_experiment, every_experiment,
                            ordering_experiment, scaling_experiment)
from attnlab.report.fit import Aggregate, FitKind
from attnlab.report.verdict import Direction, NoChange

AxisValue = Union[float, Literal["smallest", "largest"]]
CLAIM_KINDS: dict[str, type["ClaimBase"]] = {}
"""Every kind of claim by its tag; filled as the classes are defined."""


@dataclass(frozen=True)
class Runs:
    """What a claim is judged on: `table`, the finished runs of its series (one row per run: series,
    x, seed and the metrics); the experiment's `key` and `x`; `hue`, the column telling series apart
    (None with one series); where figures go; and `curves(table, column, group)`, the long table of
    one curve column of those runs (step, column, seed, group)."""

    key: str
    table: pd.DataFrame
    x: str
    hue: str | None
    figure_dir: Path
    curves: Callable[[pd.DataFrame, str, str], pd.DataFrame]


class Level(Strict):
    """A horizontal reference line on a claim's figure, e.g. a task's best achievable loss."""

    value: float
    label: str


class ClaimBase(Strict):
    """A judged statement about `metric` (a column of the results table), `quantity` in words,
    restricted to the runs of `series` (all series by default); `level` is a horizontal reference
    line on the claim's figure (a fit's)."""

    metric: str
    quantity: str
    series: list[str] | None = None
    level: Level | None = None
    needs_sweep: ClassVar[bool] = False
    """Whether the claim compares runs at several x values (x must then be swept)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        tag = cls.model_fields.get("kind")
        if tag is not None and isinstance(tag.default, str):
            CLAIM_KINDS[tag.default] = cls

    @property
    def on_curves(self) -> bool:
        """Whether the metric is a curve column (judged against the step) rather than a summary."""
        return False

    def columns(self) -> list[str]:
        """The results-table columns the claim reads."""
        return [self.metric]

    def named_series(self) -> dict[str, list[str]]:
        """The series names each field names (mappings keyed by series, `series`)."""
        return {"series": self.series or []}

    def points(self) -> list[AxisValue]:
        """The x values the claim names."""
        return []

    def judge(self, runs: Runs) -> ExperimentResult | None:
        """The verdicts (and figure) of the claim on these runs; None when there is nothing to judge."""
        raise NotImplementedError


class FitClaim(ClaimBase):
    """`metric` against x fitted as `fit` (source "curves": against the training step, one line per
    value of x), fitted to the `aggregate` over seeds at each x, its slope judged per series.

    `predicted` is judged by interval membership, or with `tolerance` as the band predicted +-
    tolerance; `direction` by the interval's sign; `does_not` ("grow" / "fall") one-sided against
    the slope `tolerance`; each given for all series or as a mapping from series (several only as
    mappings). `prediction` is how it reads; `bound_metric` a column drawn with the fit (each run's
    analytic bound on the metric)."""

    kind: Literal["fit"] = "fit"
    fit: FitKind = "power"
    source: Literal["runs", "curves"] = "runs"
    predicted: Union[float, dict[str, float], None] = None
    direction: Union[Direction, dict[str, Direction], None] = None
    does_not: Union[NoChange, dict[str, NoChange], None] = None
    tolerance: Annotated[float, Field(gt=0)] | None = None
    prediction: Union[str, dict[str, str], None] = None
    bound_metric: str | None = None
    aggregate: Aggregate = "median"
    needs_sweep: ClassVar[bool] = True

    @model_validator(mode="after")
    def _one_prediction(self) -> "FitClaim":
        if self.predicted is not None and self.direction is not None and not _mappings(self.predicted, self.direction):
            raise ValueError("direction: give predicted (a slope) or direction (a sign), not both "
                             "(both only as mappings from series to prediction)")
        if self.does_not is not None:
            if self.tolerance is None:
                raise ValueError("does_not: needs a tolerance (the largest slope the bound allows, e.g. 0.05)")
            for field in ("predicted", "direction"):
                if getattr(self, field) is not None and not _mappings(getattr(self, field), self.does_not):
                    raise ValueError(f"{field}: does_not judges the slope on its own: give no predicted / "
                                     "direction (both only as mappings from series to prediction)")
        if self.tolerance is not None and self.predicted is None and self.does_not is None:
            raise ValueError("tolerance: needs predicted (the slope it is a band around) or does_not")
        return self

    @property
    def on_curves(self) -> bool:
        return self.source == "curves"

    def columns(self) -> list[str]:
        return [] if self.on_curves else [c for c in (self.metric, self.bound_metric) if c]

    def named_series(self) -> dict[str, list[str]]:
        fields = ("predicted", "direction", "prediction", "does_not")
        mapped = {f: list(getattr(self, f)) for f in fields if isinstance(getattr(self, f), dict)}
        return ({} if self.on_curves else mapped) | super().named_series()   # curves: keyed by x values

    def prediction_for(self, series: Any) -> SlopePrediction:
        """What the slope of `series` (a value of the runs' hue; None with one series) is judged against."""
        pick = lambda value: value.get(series) if isinstance(value, dict) else value   # noqa: E731
        return SlopePrediction(pick(self.predicted), pick(self.direction), pick(self.does_not), self.tolerance,
                               pick(self.prediction))

    def judge(self, runs: Runs) -> ExperimentResult | None:
        data, x, group = runs.table, runs.x, runs.hue
        if self.on_curves:
            group = runs.hue or runs.x
            data, x = runs.curves(runs.table, self.metric, group), "step"
            if data.empty:
                return None
        level = (self.level.value, self.level.label) if self.level else None
        predictions = ({value: self.prediction_for(value) for value in data[group].unique()} if group
                       else self.prediction_for(None))
        return scaling_experiment(runs.key, self.quantity, data, x, self.metric, figure_dir=runs.figure_dir,
                                  kind=self.fit, predictions=predictions, hue=group, aggregate=self.aggregate,
                                  level=level, bound_column=self.bound_metric,
                                  figure_suffix="_".join(self.series or []))


def _mappings(*values: Any) -> bool:
    """Whether every value is a mapping (from series to prediction)."""
    return all(isinstance(v, dict) for v in values)


class OrderClaim(ClaimBase):
    """The series of `order` ordered by the metric, smallest first, comparing the `aggregate` over
    seeds of all runs or of those at x = `at` (a value, "smallest" or "largest")."""

    kind: Literal["order"] = "order"
    order: list[str] = Field(min_length=2)
    at: AxisValue | None = None
    aggregate: Aggregate = "median"

    def named_series(self) -> dict[str, list[str]]:
        return {"order": self.order} | super().named_series()

    def points(self) -> list[AxisValue]:
        return [] if self.at is None else [self.at]

    def judge(self, runs: Runs) -> ExperimentResult | None:
        return ordering_experiment(runs.key, self.quantity, runs.table, "series", self.metric, self.order,
                                   figure_dir=runs.figure_dir, x=runs.x, at=self.at, aggregate=self.aggregate)


class _MeanBound(ClaimBase):
    """A bound on means over seeds: `at_least` and / or `at_most`, for all series or per series."""

    at_least: Union[float, dict[str, float], None] = None
    at_most: Union[float, dict[str, float], None] = None
    aggregate: Aggregate = "mean"

    @model_validator(mode="after")
    def _means(self) -> "_MeanBound":
        if self.aggregate != "mean":
            raise ValueError(f"aggregate: {self.aggregate!r}: a bound (at_least / at_most) judges the "
                             "mean over seeds; give aggregate: mean or leave it out")
        return self

    def named_series(self) -> dict[str, list[str]]:
        bounds = {f: list(getattr(self, f)) for f in ("at_least", "at_most") if isinstance(getattr(self, f), dict)}
        return bounds | super().named_series()


class MeanClaim(_MeanBound):
    """The mean over seeds at x = `at` (a value, "smallest" or "largest") bounded, per series."""

    kind: Literal["mean"] = "mean"
    at: AxisValue | None = None

    @model_validator(mode="after")
    def _bounded_at(self) -> "MeanClaim":
        if self.at is None:
            raise ValueError("at: at_least / at_most need exactly one of at (an x value) and between ([x0, x1])")
        if self.at_least is None and self.at_most is None:
            raise ValueError("at: give at_least / at_most (a bound on the mean) or order (an ordering at x)")
        return self

    def points(self) -> list[AxisValue]:
        return [self.at]

    def judge(self, runs: Runs) -> ExperimentResult | None:
        return bound_experiment(runs.key, self.quantity, runs.table, runs.x, self.metric, at=self.at,
                                at_least=self.at_least, at_most=self.at_most, hue=runs.hue)


class RatioClaim(_MeanBound):
    """The ratio of the means over seeds at the two x of `between` ([x0, x1]: at x1 over at x0)
    bounded, per series."""

    kind: Literal["ratio"] = "ratio"
    between: tuple[AxisValue, AxisValue]
    needs_sweep: ClassVar[bool] = True

    @model_validator(mode="after")
    def _bounded_ratio(self) -> "RatioClaim":
        if self.between[0] == self.between[1]:
            raise ValueError(f"between: {list(self.between)} names one x value twice; give two different ones")
        if self.at_least is None and self.at_most is None:
            raise ValueError("between: give at_least or at_most (the bound on the ratio)")
        return self

    def points(self) -> list[AxisValue]:
        return list(self.between)

    def judge(self, runs: Runs) -> ExperimentResult | None:
        return bound_experiment(runs.key, self.quantity, runs.table, runs.x, self.metric, between=self.between,
                                at_least=self.at_least, at_most=self.at_most, hue=runs.hue)


class EveryClaim(ClaimBase):
    """Every run's value at most `every_at_most` (e.g. a measurement over its analytic bound <= 1)."""

    kind: Literal["every"] = "every"
    every_at_most: float
    aggregate: str | None = None

    @model_validator(mode="after")
    def _no_aggregate(self) -> "EveryClaim":
        if self.aggregate is not None:
            raise ValueError("aggregate: every_at_most judges every run, not an aggregate; leave it out")
        return self

    def judge(self, runs: Runs) -> ExperimentResult | None:
        return every_experiment(runs.key, self.quantity, runs.table, self.metric, self.every_at_most, hue=runs.hue)


INFERRED_KINDS = (("order", "order"), ("every_at_most", "every"), ("between", "ratio"), ("at_least", "mean"),
                  ("at_most", "mean"), ("at", "mean"))
"""The kind of a claim without `kind`: that of the first of these fields it has; a fit otherwise."""


def claim_kind(raw: Any) -> str | None:
    """The tag of a claim (a mapping of its fields, or a claim)."""
    if not isinstance(raw, dict):
        return getattr(raw, "kind", None)
    if "kind" in raw:
        return raw["kind"]
    return next((kind for field, kind in INFERRED_KINDS if field in raw), "fit")


def claim_union() -> Any:
    """The union of every kind in CLAIM_KINDS, told apart by claim_kind."""
    members = tuple(Annotated[cls, Tag(kind)] for kind, cls in CLAIM_KINDS.items())
    return Annotated[Union[members], Discriminator(claim_kind)]


Claim = claim_union()


def parse_claim(raw: dict[str, Any]) -> ClaimBase:
    """One claim from its fields (ConfigError, one line naming the field, when invalid)."""
    try:
        return TypeAdapter(Claim).validate_python(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(without_kinds(error), ClaimBase, name="claim")) from None


def without_kinds(error: ValidationError) -> ValidationError:
    """`error` with each claim's kind left out of the error locations (claims.0.fit.tolerance ->
    claims.0.tolerance), and the errors of a claim as a whole as one message naming the field: a
    check across fields (its message starts with the field: "tolerance: needs predicted"), a
    missing or unknown field, an unknown kind."""
    items, changed = [], False
    for item in error.errors():
        loc = list(item["loc"])
        at = next((i for i, part in enumerate(loc) if part in CLAIM_KINDS and _claim_at(loc, i)), None)
        if item["type"] in ("union_tag_invalid", "union_tag_not_found") and _claim_at(loc, len(loc)):
            at = len(loc)
            given = item["input"].get("kind") if isinstance(item["input"], dict) else item["input"]
            message = f"kind: {given!r} is not a kind of claim (allowed: {', '.join(CLAIM_KINDS)})"
        elif at is not None and item["type"] == "value_error" and len(loc) == at + 1:
            message = str(item["ctx"]["error"])
        elif at is not None and item["type"] in ("missing", "extra_forbidden") and len(loc) == at + 2:
            kind, field = loc[at], loc[-1]
            message = (f"{field}: required by a claim of kind {kind!r}" if item["type"] == "missing" else
                       f"{field}: a claim of kind {kind!r} takes no {field} (its fields: "
                       f"{', '.join(f for f in CLAIM_KINDS[kind].model_fields if f != 'kind')})")
        elif at is not None:
            items.append({**_details(item), "loc": tuple(loc[:at] + loc[at + 1:])})
            changed = True
            continue
        else:
            items.append(_details(item))
            continue
        path = ".".join(map(str, loc[:at]))
        items.append({"type": "value_error", "loc": (), "input": item["input"],
                      "ctx": {"error": ValueError(f"{path}.{message}" if path else message)}})
        changed = True
    return ValidationError.from_exception_data(error.title, items) if changed else error


def _claim_at(loc: list, i: int) -> bool:
    """Whether position i of an error location is where a claim's own location ends (a single claim,
    or one of a list `claims`)."""
    return i == 0 or (i >= 2 and loc[i - 2] == "claims" and isinstance(loc[i - 1], int))


def _details(item: dict[str, Any]) -> dict[str, Any]:
    """An error as pydantic takes it back (type, loc, input, ctx)."""
    return {k: item[k] for k in ("type", "loc", "input", "ctx") if k in item}
