"""Verdicts: a measured interval judged against a prediction.

A Verdict has a Status: "consistent" (the interval agrees with the prediction), "inconsistent" (it
excludes it), "inconclusive" (too few points or seeds, no finite interval, or an interval partly
inside), or "measured" (no prediction: a plain measurement). One rule, `band_status`, judges an
interval against a band (a tolerance around a slope, a sign, a bound independent of x, a bound on a
mean or ratio); a point prediction is judged by the interval containing it; an ordering of groups
by the share of resamples in which it holds; a bound on every run by the largest run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from attnlab.report.fit import Aggregate, Fit, bootstrap, checked_centre, fraction_text, percentiles, symbol

Direction = Literal["negative", "positive"]
NoChange = Literal["grow", "fall"]
MIN_POINTS, MIN_SEEDS = 3, 2   # fewer x values or seeds per x value leave a slope inconclusive


class Status(str, Enum):
    """The outcome of a verdict; a string (its value) in tables, CSV and HTML."""

    CONSISTENT = "consistent"
    INCONSISTENT = "inconsistent"
    INCONCLUSIVE = "inconclusive"
    MEASURED = "measured"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Verdict:
    """One claim judged: its text, the prediction, the measured value and interval, and a status.

    `text` is the one-line verdict, e.g. "E1 approximation error ~ m^-0.47 [-0.55, -0.40]:
    consistent with m^-1/2"; `reason` says why a verdict is inconclusive.
    """

    claim: str
    prediction: str
    measured: str
    status: Status
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    reason: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if self.status not in set(Status):
            raise ValueError(f"status = {self.status!r}: expected one of {tuple(s.value for s in Status)}")
        object.__setattr__(self, "status", Status(self.status))
        if not self.text:
            object.__setattr__(self, "text", verdict_text(self.claim, self.measured, self.status,
                                                          self.prediction, self.reason))

    @property
    def interval(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return asdict(self) | {"status": self.status.value}


def verdict_text(claim: str, measured: str, status: Status, prediction: str, reason: str = "",
                 joiner: str = ": ") -> str:
    """The one-line verdict: "<claim><joiner><measured>: <status> with <prediction>"."""
    head = f"{claim}{joiner}{measured}"
    if status == Status.MEASURED:
        return head
    if status == Status.INCONCLUSIVE:
        return f"{head}: inconclusive ({reason}); predicted {prediction}"
    return f"{head}: {status} with {prediction}"


def band_status(low: float, high: float, floor: float = -math.inf, ceiling: float = math.inf,
                closed: bool = True) -> Status:
    """The interval [low, high] against the band from floor to ceiling: consistent when it lies
    wholly inside (closed: its ends may touch the band's; open: they may not), inconsistent when it
    lies wholly outside, inconclusive when it crosses an edge."""
    inside = (floor <= low and high <= ceiling) if closed else (floor < low and high < ceiling)
    if inside:
        return Status.CONSISTENT
    return Status.INCONSISTENT if high < floor or low > ceiling else Status.INCONCLUSIVE


def interval_verdict(claim: str, estimate: float, ci_low: float, ci_high: float, *, measured: str,
                     prediction: str, predicted: float | None = None, direction: Direction | None = None,
                     reason: str = "", joiner: str = ": ", tolerance: float | None = None,
                     does_not: NoChange | None = None, at_least: float | None = None,
                     at_most: float | None = None) -> Verdict:
    """The verdict on a measured interval: against a point `predicted` (contained in the interval;
    with a `tolerance` the closed band predicted +- tolerance), a `direction` (the open band below or
    above 0), a bound independent of x `does_not` ("grow": the open band below +tolerance, "fall":
    above -tolerance), or bounds on the value (the closed band from `at_least` to `at_most`). None
    of them: status "measured".

    A non-empty `reason` (e.g. "2 seeds") makes it inconclusive; so does a NaN interval.
    joiner joins claim and measured in the text.
    """
    bounded = at_least is not None or at_most is not None
    if sum(v is not None for v in (predicted, direction, does_not)) + bounded > 1:
        raise ValueError("give one of predicted (a value), direction (a sign), does_not (a bound independent "
                         "of x) or at_least / at_most (bounds on the value)")
    finite = all(math.isfinite(v) for v in (estimate, ci_low, ci_high))
    if predicted is None and direction is None and does_not is None and not bounded:
        status = Status.MEASURED
    elif reason or not finite:
        status, reason = Status.INCONCLUSIVE, reason or "no finite interval"
    elif predicted is not None and tolerance is None:
        status = Status.CONSISTENT if ci_low <= predicted <= ci_high else Status.INCONSISTENT
    else:
        if does_not is not None:
            edge = tolerance or 0.0
            band = (-math.inf, edge) if does_not == "grow" else (-edge, math.inf)
            straddle = f"interval contains {'+' if does_not == 'grow' else '-'}{edge:g}"
        elif predicted is not None:
            band, straddle = (predicted - tolerance, predicted + tolerance), "interval crosses the band's edge"
        elif bounded:
            band = (-math.inf if at_least is None else at_least, math.inf if at_most is None else at_most)
            straddle = "interval crosses a bound"
        else:
            band = (-math.inf, 0.0) if direction == "negative" else (0.0, math.inf)
            straddle = "interval contains 0"
        status = band_status(ci_low, ci_high, *band, closed=does_not is None and direction is None)
        reason = straddle if status == Status.INCONCLUSIVE else ""
    text = verdict_text(claim, measured, status, prediction, reason, joiner)
    return Verdict(claim, prediction, measured, status, float(estimate), float(ci_low), float(ci_high),
                   reason, text)


# ------------------------------------------------------------------------------- fitted slopes


@dataclass(frozen=True)
class SlopePrediction:
    """What a fitted slope is judged against: a value `slope` (with `tolerance`, the band slope +-
    tolerance), a sign `direction`, or `does_not` "grow" / "fall" (a bound independent of x: the
    slope's interval below +tolerance / above -tolerance); none of them: a measurement. `text` is
    how the prediction reads (default from the law, e.g. "m^-1/2")."""

    slope: float | None = None
    direction: Direction | None = None
    does_not: NoChange | None = None
    tolerance: float | None = None
    text: str | None = None

    def judge(self, claim: str, fit: Fit) -> Verdict:
        if self.does_not is not None:
            return judge_no_growth(claim, fit, self.does_not, self.tolerance, self.text)
        if self.slope is not None:
            return judge(claim, fit, self.slope, self.text, tolerance=self.tolerance)
        if self.direction is not None:
            return judge_sign(claim, fit, self.direction, self.text)
        return measurement(claim, fit)


def exponent_text(value: float, x: str) -> str:
    """A predicted exponent as a law: (-0.5, "model.m") -> "m^-1/2"."""
    return f"{symbol(x)}^{fraction_text(value)}"


def _unreliable(fit: Fit, min_points: int, min_seeds: int, max_width: float | None) -> str:
    """Why `fit` cannot decide a claim ('' when it can)."""
    if not math.isfinite(fit.slope):
        return fit.reason or "no fit"
    if fit.n_points < min_points:
        return f"{fit.n_points} {symbol(fit.x)} values, fewer than {min_points}"
    if fit.n_seeds < min_seeds:
        return f"{fit.n_seeds} seed(s) per {symbol(fit.x)} value, fewer than {min_seeds}"
    if not fit.ok:
        return fit.reason or "no interval"
    if max_width is not None and fit.width > max_width:
        return f"interval width {fit.width:.3g} exceeds {max_width:g}"
    return ""


def _joiner(fit: Fit) -> str:
    """"E1 error ~ m^-0.47 [...]" for a fitted law, "E1 error: no fit (...)" without one."""
    return " ~ " if math.isfinite(fit.slope) else ": "


def judge(claim: str, fit: Fit, predicted: float, prediction: str | None = None,
          max_width: float | None = None, min_points: int = MIN_POINTS, min_seeds: int = MIN_SEEDS,
          tolerance: float | None = None) -> Verdict:
    """Judge a point prediction of the slope: consistent when the fit's interval contains `predicted`.

    With a `tolerance` the prediction is the band predicted +- tolerance (an equivalence test, for
    a law that holds up to finite-size corrections a precise measurement resolves): consistent when
    the whole interval lies in the band, inconsistent when it lies wholly outside, else inconclusive.
    prediction: how the prediction reads (default "m^-1/2" for a power law, "slope 0" otherwise).
    Inconclusive when the fit has fewer than min_points x values or min_seeds seeds, no finite
    interval, or an interval wider than max_width.
    """
    if prediction is None:
        prediction = (exponent_text(predicted, fit.x) if fit.kind == "power"
                      else f"slope {fraction_text(predicted)}")
        if tolerance is not None:
            prediction += f" (slope within {tolerance:g})"
    return interval_verdict(claim, fit.slope, fit.ci_low, fit.ci_high, measured=fit.describe(),
                            prediction=prediction, predicted=predicted, tolerance=tolerance,
                            reason=_unreliable(fit, min_points, min_seeds, max_width), joiner=_joiner(fit))


def judge_sign(claim: str, fit: Fit, expected: Direction, prediction: str | None = None,
               min_points: int = MIN_POINTS, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Judge a direction ("decreases with m" is a negative slope) by where the interval lies.

    Consistent when the whole interval has the expected sign, inconsistent when the whole interval
    has the opposite sign, inconclusive when it contains 0 (or the fit is unreliable).
    """
    if expected not in ("negative", "positive"):
        raise ValueError(f"expected = {expected!r}: use 'negative' (decreasing) or 'positive' (increasing)")
    word = "decreasing" if expected == "negative" else "increasing"
    prediction = prediction or f"{word} in {symbol(fit.x)}"
    return interval_verdict(claim, fit.slope, fit.ci_low, fit.ci_high, measured=fit.describe(),
                            prediction=prediction, direction=expected,
                            reason=_unreliable(fit, min_points, min_seeds, None), joiner=_joiner(fit))


def judge_no_growth(claim: str, fit: Fit, does_not: NoChange, tolerance: float,
                    prediction: str | None = None, min_points: int = MIN_POINTS,
                    min_seeds: int = MIN_SEEDS) -> Verdict:
    """Judge a bound that does not depend on x, one-sided on the slope's interval [lo, hi].

    does_not = "grow" (an upper bound independent of x allows the quantity to fall, not to grow):
    consistent when hi < +tolerance, inconsistent when lo > +tolerance, else inconclusive.
    does_not = "fall": consistent when lo > -tolerance, inconsistent when hi < -tolerance.
    prediction: how the statement reads (default "does not grow in T (slope < 0.05)").
    """
    if does_not not in ("grow", "fall"):
        raise ValueError(f"does_not = {does_not!r}: use 'grow' (an upper bound) or 'fall' (a lower bound)")
    if not tolerance >= 0:
        raise ValueError(f"tolerance = {tolerance!r}: expected a non-negative slope tolerance")
    sign = "<" if does_not == "grow" else ">"
    band = f"slope {sign} {'+' if does_not == 'grow' else '-'}{tolerance:g}"
    prediction = (f"{prediction} ({band})" if prediction
                  else f"does not {does_not} in {symbol(fit.x)} ({band})")
    return interval_verdict(claim, fit.slope, fit.ci_low, fit.ci_high, measured=fit.describe(),
                            prediction=prediction, does_not=does_not, tolerance=tolerance,
                            reason=_unreliable(fit, min_points, min_seeds, None), joiner=_joiner(fit))


def measurement(claim: str, fit: Fit) -> Verdict:
    """A prediction-free row: the fitted law with its interval, status "measured"."""
    return Verdict(claim, "—", fit.describe(), Status.MEASURED, fit.slope, fit.ci_low, fit.ci_high, fit.reason,
                   verdict_text(claim, fit.describe(), Status.MEASURED, "—", joiner=_joiner(fit)))


# ----------------------------------------------------------------------- runs, groups and means


def judge_every(claim: str, values: Sequence[float], at_most: float, what: str = "run") -> Verdict:
    """Judge "every run's value is at most `at_most`" (a deterministic bound, e.g. a measured norm over
    its analytic bound <= 1): consistent when every finite value is, inconsistent when one exceeds it,
    inconclusive without finite values. The measured text gives the largest value and the count."""
    v = np.asarray(values, dtype=float)
    n_missing = int((~np.isfinite(v)).sum())
    v = v[np.isfinite(v)]
    prediction = f"every {what} <= {at_most:g}"
    if len(v) == 0:
        return Verdict(claim, prediction, "no finite runs", Status.INCONCLUSIVE, reason="no finite runs")
    above = int((v > at_most).sum())
    measured = (f"largest {v.max():.3g} over {len(v)} {what}s" + (f", {above} above" if above else "")
                + (f", {n_missing} missing" if n_missing else ""))
    status = Status.INCONSISTENT if above else Status.CONSISTENT
    return Verdict(claim, prediction, measured, status, float(v.max()), float(v.min()), float(v.max()))


def judge_order(claim: str, table: pd.DataFrame, group: str, y: str, order: Sequence,
                seed: str = "seed", n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95,
                min_seeds: int = MIN_SEEDS, aggregate: Aggregate = "median") -> Verdict:
    """Judge "order[0] < order[1] < ... by y" (e.g. He < LeCun < NTK by final loss) by bootstrap.

    The runs of each group are resampled with replacement and their medians (means, with
    aggregate="mean") compared. Support is the fraction of resamples where the whole order holds:
    consistent when support >= ci; inconsistent when some adjacent pair is reversed in at least a
    fraction ci of resamples; inconclusive otherwise. The measured text lists each group's median
    (mean) with its percentile interval.
    """
    centre = checked_centre(table, (group, y), aggregate)
    if len(order) < 2:
        raise ValueError(f"order = {list(order)!r}: an ordering needs two or more groups")
    prediction = " < ".join(map(str, order)) + f" by {y}"
    values = []
    for g in order:
        v = pd.to_numeric(table.loc[table[group] == g, y], errors="coerce").to_numpy(dtype=float)
        values.append(v[np.isfinite(v)])
    boot = bootstrap(values, centre, n_boot, rng_seed, "report.order.bootstrap")   # (groups, n_boot)
    parts = []
    for g, v, b in zip(order, values, boot):
        if len(v) == 0:
            parts.append(f"{g}: no runs")
            continue
        lo, hi = percentiles(b, ci)
        parts.append(f"{g} {centre(v):.3g} [{lo:.3g}, {hi:.3g}]")
    holds = np.all(boot[:-1] < boot[1:], axis=0)
    support = float(holds.mean())
    reversed_pair = max(float(np.mean(boot[i] > boot[i + 1])) for i in range(len(order) - 1))
    n_min = min(len(v) for v in values)
    measured = (("means: " if aggregate == "mean" else "") + ", ".join(parts)
                + f"; order holds in {support:.0%} of resamples")
    if n_min < min_seeds:
        status, reason = Status.INCONCLUSIVE, f"{n_min} run(s) in some group, fewer than {min_seeds}"
    elif support >= ci:
        status, reason = Status.CONSISTENT, ""
    elif reversed_pair >= ci:
        status, reason = Status.INCONSISTENT, ""
    else:
        status, reason = Status.INCONCLUSIVE, f"order holds in {support:.0%} of resamples (< {ci:.0%})"
    return Verdict(claim, prediction, measured, status, support, math.nan, math.nan, reason)


def judge_bound(claim: str, values: Sequence[float], *, at_least: float | None = None,
                at_most: float | None = None, baseline: Sequence[float] | None = None, unit: str = "",
                n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Judge "the mean of `values` is at least / at most a bound (or between both)", or, with
    `baseline`, the same of the ratio mean(values) / mean(baseline) (e.g. "the gradient norm grows
    by at least 5x from L = 4 to L = 72").

    The interval is a percentile bootstrap over runs (each group resampled on its own). Consistent
    when the whole interval satisfies the bounds, inconsistent when the whole interval violates one,
    inconclusive otherwise; no bound: status "measured". `unit` follows the numbers (e.g. "x").
    """
    groups = [np.asarray(values, dtype=float)] + ([] if baseline is None else [np.asarray(baseline, dtype=float)])
    groups = [g[np.isfinite(g)] for g in groups]
    if at_least is not None and at_most is not None:
        prediction = f"between {at_least:.3g}{unit} and {at_most:.3g}{unit}"
    elif at_least is not None:
        prediction = f">= {at_least:.3g}{unit}"
    elif at_most is not None:
        prediction = f"<= {at_most:.3g}{unit}"
    else:
        prediction = "—"
    n_min = min(len(g) for g in groups)
    if n_min == 0:
        status = Status.MEASURED if prediction == "—" else Status.INCONCLUSIVE
        return Verdict(claim, prediction, "no finite runs", status, reason="no finite runs")
    boot = bootstrap(groups, np.mean, n_boot, rng_seed, "report.bound.bootstrap")
    estimate = groups[0].mean() / (groups[1].mean() if baseline is not None else 1.0)
    low, high = percentiles(boot[0] / (boot[1] if baseline is not None else 1.0), ci)
    measured = f"{estimate:.3g}{unit} [{low:.3g}, {high:.3g}]"
    reason = f"{n_min} run(s), fewer than {min_seeds}" if n_min < min_seeds and prediction != "—" else ""
    return interval_verdict(claim, estimate, low, high, measured=measured, prediction=prediction, reason=reason,
                            at_least=at_least, at_most=at_most)
