"""Scaling-law fits with bootstrap intervals, and verdicts on the claims they test.

A fit takes a tidy table (one row per run: an axis column x, a metric column y, a seed column),
reduces it to the median of y at each x value (or the mean: `aggregate="mean"`, as a paper that
plots means over seeds does), and fits a straight line by least squares:

    power:  log median(y) = intercept + slope * log x        (y ~ x^slope)
    log:    median(y)     = intercept + slope * log x        (or log median(y) with log_y=True)
    exp:    log median(y) = intercept + slope * x            (y ~ exp(slope * x): linear convergence)

The interval of the slope is a percentile bootstrap over seeds: the runs at each x value are resampled
with replacement, the medians (means) recomputed and the line refitted, `n_boot` times.

A Verdict compares a measured interval with a prediction: "consistent" (the interval contains it),
"inconsistent" (it excludes it); a bound that does not depend on x ("does not grow") is judged
one-sided: consistent when the whole interval lies below +tolerance, inconsistent when it lies wholly
above; "inconclusive" (too few points or seeds, no finite interval, or an
interval wider than a stated threshold), or "measured" (no prediction: a plain measurement).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from attnlab.seeding import stream_seed

FitKind = Literal["power", "log", "exp"]
Aggregate = Literal["median", "mean"]
AGGREGATES = {"median": np.median, "mean": np.mean}
STATUSES = ("consistent", "inconsistent", "inconclusive", "measured")


# ----------------------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class Fit:
    """A fitted line with the bootstrap interval of its slope; NaN slope/interval when not fittable.

    `reason` says why a fit is NaN or has no interval (empty when it is whole); `n_points` is the
    number of distinct x values used, `n_seeds` the smallest number of runs at any of them,
    `n_dropped` the rows left out for a missing or invalid value; `aggregate` what the line is
    fitted to at each x ("median" or "mean" over seeds).
    """

    kind: FitKind
    x: str
    y: str
    slope: float
    ci_low: float
    ci_high: float
    intercept: float
    n_points: int
    n_seeds: int
    ci: float = 0.95
    log_y: bool = True
    n_dropped: int = 0
    reason: str = ""
    aggregate: Aggregate = "median"

    @property
    def ok(self) -> bool:
        """True when the slope and both interval ends are finite."""
        return all(math.isfinite(v) for v in (self.slope, self.ci_low, self.ci_high))

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low

    def predict(self, x: float | np.ndarray) -> np.ndarray:
        """The fitted curve at `x` (in the units of y)."""
        x = np.asarray(x, dtype=float)
        t = x if self.kind == "exp" else np.log(x)
        line = self.intercept + self.slope * t
        return np.exp(line) if self.log_y else line

    def describe(self) -> str:
        """E.g. "m^-0.47 [-0.55, -0.40]", "0.0012 log T [-0.003, 0.004]", "exp(-0.021 step) [...]"."""
        sym = symbol(self.x)
        if not math.isfinite(self.slope):
            return f"no fit ({self.reason})"
        interval = (f"[{_num(self.ci_low, self.kind)}, {_num(self.ci_high, self.kind)}]"
                    if math.isfinite(self.ci_low) and math.isfinite(self.ci_high)
                    else f"[no interval: {self.reason}]")
        slope = _num(self.slope, self.kind)
        if self.kind == "power":
            return f"{sym}^{slope} {interval}"
        if self.kind == "exp":
            return f"exp({slope} {sym}) {interval}"
        return f"{slope} log {sym} {interval}" if not self.log_y else f"{slope} log {sym} (log scale) {interval}"

    def to_dict(self) -> dict:
        return asdict(self) | {"measured": self.describe()}


def symbol(column: str) -> str:
    """The short name of a dotted column: "model.m" -> "m", "data.T" -> "T"."""
    return column.rsplit(".", 1)[-1]


def _num(value: float, kind: str) -> str:
    if kind == "power":
        return f"{value:.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:.2g}"
    return f"{value:.3g}"


def fit_power_law(table: pd.DataFrame, x: str, y: str, seed: str = "seed", n_boot: int = 2000,
                  rng_seed: int = 0, ci: float = 0.95, aggregate: Aggregate = "median") -> Fit:
    """Fit y ~ x^slope: least squares of log(median y per x) on log x, bootstrap over seeds
    (aggregate="mean": the mean over seeds instead of the median).

    table: one row per run with columns x, y (and `seed` when present). Rows with a missing x or y
    are dropped (counted in n_dropped); x <= 0 or y <= 0 make the fit NaN with a reason.
    """
    return _fit(table, x, y, seed, "power", True, True, n_boot, rng_seed, ci, aggregate)


def fit_log_trend(table: pd.DataFrame, x: str, y: str, seed: str = "seed", log_y: bool = False,
                  n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95, aggregate: Aggregate = "median") -> Fit:
    """Fit median y (log median y when log_y) = intercept + slope * log x, bootstrap over seeds.

    For logarithmic claims: a slope whose interval contains 0 means flat in log x; m ~ log n is a
    positive slope of m against log n.
    """
    return _fit(table, x, y, seed, "log", True, log_y, n_boot, rng_seed, ci, aggregate)


def fit_exponential(table: pd.DataFrame, x: str, y: str, seed: str = "seed", n_boot: int = 2000,
                    rng_seed: int = 0, ci: float = 0.95, aggregate: Aggregate = "median") -> Fit:
    """Fit y ~ exp(slope * x): least squares of log(median y per x) on x (x itself, not log x).

    For linear-convergence claims: the loss against the step is a line in log scale with a negative
    slope (the rate).
    """
    return _fit(table, x, y, seed, "exp", False, True, n_boot, rng_seed, ci, aggregate)


def fit_trend(table: pd.DataFrame, x: str, y: str, kind: FitKind = "power", seed: str = "seed",
              log_y: bool | None = None, n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95,
              aggregate: Aggregate = "median") -> Fit:
    """Dispatch on kind: "power" (fit_power_law), "log" (fit_log_trend; log_y default False) or "exp"
    (fit_exponential). log_y may only be changed for "log"; aggregate: "median" or "mean" over seeds."""
    if kind == "log":
        return fit_log_trend(table, x, y, seed, bool(log_y), n_boot, rng_seed, ci, aggregate)
    if kind not in ("power", "exp"):
        raise ValueError(f"kind = {kind!r}: expected 'power' (y ~ x^a), 'log' (y ~ a log x) or 'exp' (y ~ exp(a x))")
    if log_y is False:
        raise ValueError(f"log_y = False is only allowed with kind='log'; a {kind} fit is always in log y")
    fit = fit_power_law if kind == "power" else fit_exponential
    return fit(table, x, y, seed, n_boot, rng_seed, ci, aggregate)


def _fit(table: pd.DataFrame, x: str, y: str, seed: str, kind: FitKind, log_x: bool, log_y: bool,
         n_boot: int, rng_seed: int, ci: float, aggregate: Aggregate = "median") -> Fit:
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate = {aggregate!r}: expected 'median' or 'mean' (over seeds)")
    centre = AGGREGATES[aggregate]
    for name in (x, y):
        if name not in table.columns:
            raise ValueError(f"column {name!r} is not in the table; columns are {sorted(map(str, table.columns))}")
    if not 0 < ci < 1:
        raise ValueError(f"ci = {ci!r}: expected a level strictly between 0 and 1, e.g. 0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot!r}: expected a positive number of bootstrap samples")

    def nan_fit(reason: str, n_points: int = 0, n_seeds: int = 0, n_dropped: int = 0) -> Fit:
        return Fit(kind, x, y, math.nan, math.nan, math.nan, math.nan, n_points, n_seeds, ci, log_y,
                   n_dropped, reason, aggregate)

    xs = pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(table[y], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(xs) & np.isfinite(ys)
    n_dropped = int((~finite).sum())
    xs, ys = xs[finite], ys[finite]
    if log_x and np.any(xs <= 0):
        return nan_fit(f"{x} <= 0 ({xs[xs <= 0][0]:g}): log {symbol(x)} is undefined", n_dropped=n_dropped)
    if log_y and np.any(ys <= 0):
        return nan_fit(f"{y} <= 0 ({ys[ys <= 0][0]:g}) at {x} = {xs[ys <= 0][0]:g}: "
                       "a log-scale fit needs positive values", n_dropped=n_dropped)

    values = np.unique(xs)
    groups = [ys[xs == v] for v in values]
    n_points = len(values)
    n_seeds = min((len(g) for g in groups), default=0)
    if seed in table.columns:
        _check_one_run_per_seed(table.loc[finite], x, seed)
    if n_points < 2:
        what = "no finite values" if n_points == 0 else f"one {x} value ({values[0]:g})"
        return nan_fit(f"{what}: a slope needs two or more", n_points, n_seeds, n_dropped)

    t = np.log(values) if log_x else values
    centres = np.array([centre(g) for g in groups])
    slope, intercept = _least_squares(t, _maybe_log(centres, log_y)[None, :])
    slope, intercept = float(slope[0]), float(intercept[0])

    if n_seeds < 2:
        return Fit(kind, x, y, slope, math.nan, math.nan, intercept, n_points, n_seeds, ci, log_y,
                   n_dropped, "one run at some x value: no bootstrap interval", aggregate)
    rng = np.random.default_rng(stream_seed(rng_seed, "report.fit.bootstrap"))
    boot = np.empty((n_boot, n_points))
    for j, g in enumerate(groups):
        boot[:, j] = centre(g[rng.integers(0, len(g), size=(n_boot, len(g)))], axis=1)
    boot_slopes, _ = _least_squares(t, _maybe_log(boot, log_y))
    tail = (1 - ci) / 2
    low, high = np.quantile(boot_slopes, [tail, 1 - tail])
    return Fit(kind, x, y, slope, float(low), float(high), intercept, n_points, n_seeds, ci, log_y,
               n_dropped, "", aggregate)


def _maybe_log(values: np.ndarray, log: bool) -> np.ndarray:
    return np.log(values) if log else values


def _least_squares(t: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of lines fitted to each row of Y (R, P) against t (P,)."""
    tc = t - t.mean()
    slope = (Y - Y.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
    return slope, Y.mean(axis=1) - slope * t.mean()


def _check_one_run_per_seed(table: pd.DataFrame, x: str, seed: str) -> None:
    counts = table.groupby([x, seed], dropna=False).size()
    if (counts > 1).any():
        (xv, sv), n = counts.idxmax(), int(counts.max())
        raise ValueError(f"the table has {n} runs with {x} = {xv} and {seed} = {sv}: another axis varies; "
                         f"select one value of it (or group by it) before fitting {x}")


# ------------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """One claim judged: its text, the prediction, the measured value and interval, and a status.

    status is "consistent", "inconsistent", "inconclusive" or "measured" (no prediction made);
    `text` is the one-line verdict, e.g. "E1 approximation error ~ m^-0.47 [-0.55, -0.40]:
    consistent with m^-1/2".
    """

    claim: str
    prediction: str
    measured: str
    status: str
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    reason: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status = {self.status!r}: expected one of {STATUSES}")
        if not self.text:
            object.__setattr__(self, "text", verdict_text(self.claim, self.measured, self.status,
                                                          self.prediction, self.reason))

    @property
    def interval(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return asdict(self)


def verdict_text(claim: str, measured: str, status: str, prediction: str, reason: str = "",
                 joiner: str = ": ") -> str:
    """The one-line verdict: "<claim><joiner><measured>: <status> with <prediction>"."""
    head = f"{claim}{joiner}{measured}"
    if status == "measured":
        return head
    if status == "inconclusive":
        return f"{head}: inconclusive ({reason}); predicted {prediction}"
    return f"{head}: {status} with {prediction}"


def exponent_text(value: float, x: str) -> str:
    """A predicted exponent as a law: (-0.5, "model.m") -> "m^-1/2"."""
    return f"{symbol(x)}^{fraction_text(value)}"


def fraction_text(value: float) -> str:
    """-0.5 -> "-1/2", 2.0 -> "2", 0.3183 -> "0.318"."""
    frac = Fraction(value).limit_denominator(12)
    if abs(float(frac) - value) > 1e-9:
        return f"{value:.3g}"
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


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


def judge(claim: str, fit: Fit, predicted: float, prediction: str | None = None,
          max_width: float | None = None, min_points: int = 3, min_seeds: int = 2,
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


def judge_sign(claim: str, fit: Fit, expected: Literal["negative", "positive"],
               prediction: str | None = None, min_points: int = 3, min_seeds: int = 2) -> Verdict:
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


Bound = Literal["grow", "fall"]


def judge_no_growth(claim: str, fit: Fit, does_not: Bound, tolerance: float,
                    prediction: str | None = None, min_points: int = 3, min_seeds: int = 2) -> Verdict:
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


def one_sided_status(ci_low: float, ci_high: float, does_not: Bound, tolerance: float) -> str:
    """"consistent" / "inconsistent" / "inconclusive" of a no-growth (no-fall) bound on [ci_low, ci_high]."""
    if does_not == "grow":
        return "consistent" if ci_high < tolerance else "inconsistent" if ci_low > tolerance else "inconclusive"
    return "consistent" if ci_low > -tolerance else "inconsistent" if ci_high < -tolerance else "inconclusive"


def judge_every(claim: str, values: Sequence[float], at_most: float, what: str = "run") -> Verdict:
    """Judge "every run's value is at most `at_most`" (a deterministic bound, e.g. a measured norm over
    its analytic bound <= 1): consistent when every finite value is, inconsistent when one exceeds it,
    inconclusive without finite values. The measured text gives the largest value and the count."""
    v = np.asarray(values, dtype=float)
    n_missing = int((~np.isfinite(v)).sum())
    v = v[np.isfinite(v)]
    prediction = f"every {what} <= {at_most:g}"
    if len(v) == 0:
        return Verdict(claim, prediction, "no finite runs", "inconclusive", reason="no finite runs")
    above = int((v > at_most).sum())
    measured = (f"largest {v.max():.3g} over {len(v)} {what}s" + (f", {above} above" if above else "")
                + (f", {n_missing} missing" if n_missing else ""))
    status = "inconsistent" if above else "consistent"
    return Verdict(claim, prediction, measured, status, float(v.max()), float(v.min()), float(v.max()))


def interval_verdict(claim: str, estimate: float, ci_low: float, ci_high: float, *, measured: str,
                     prediction: str, predicted: float | None = None,
                     direction: Literal["negative", "positive"] | None = None,
                     reason: str = "", joiner: str = ": ", tolerance: float | None = None,
                     does_not: Bound | None = None) -> Verdict:
    """The general verdict on any measured interval: against a point `predicted` (or the band
    predicted +- tolerance, see judge), a `direction`, or a one-sided bound `does_not` ("grow":
    the interval below +tolerance, "fall": above -tolerance; see judge_no_growth).

    A non-empty `reason` (e.g. "2 seeds") makes it inconclusive; so does a NaN interval.
    Neither predicted nor direction: status "measured". joiner joins claim and measured in the text.
    """
    if sum(v is not None for v in (predicted, direction, does_not)) > 1:
        raise ValueError("give one of predicted (a value), direction (a sign) or does_not (a bound)")
    finite = all(math.isfinite(v) for v in (estimate, ci_low, ci_high))
    if predicted is None and direction is None and does_not is None:
        status = "measured"
    elif reason or not finite:
        status, reason = "inconclusive", reason or "no finite interval"
    elif does_not is not None:
        status = one_sided_status(ci_low, ci_high, does_not, tolerance or 0.0)
        edge = f"{'+' if does_not == 'grow' else '-'}{tolerance or 0:g}"
        reason = f"interval contains {edge}" if status == "inconclusive" else ""
    elif predicted is not None and tolerance is not None:
        low, high = predicted - tolerance, predicted + tolerance
        inside, outside = low <= ci_low and ci_high <= high, ci_high < low or ci_low > high
        status = "consistent" if inside else "inconsistent" if outside else "inconclusive"
        reason = "interval crosses the band's edge" if status == "inconclusive" else ""
    elif predicted is not None:
        status = "consistent" if ci_low <= predicted <= ci_high else "inconsistent"
    else:
        good, bad = (ci_high < 0, ci_low > 0) if direction == "negative" else (ci_low > 0, ci_high < 0)
        status = "consistent" if good else "inconsistent" if bad else "inconclusive"
        if status == "inconclusive":
            reason = "interval contains 0"
    text = verdict_text(claim, measured, status, prediction, reason, joiner)
    return Verdict(claim, prediction, measured, status, float(estimate), float(ci_low), float(ci_high),
                   reason, text)


def measurement(claim: str, fit: Fit) -> Verdict:
    """A prediction-free row: the fitted law with its interval, status "measured"."""
    return Verdict(claim, "—", fit.describe(), "measured", fit.slope, fit.ci_low, fit.ci_high, fit.reason,
                   verdict_text(claim, fit.describe(), "measured", "—", joiner=_joiner(fit)))


def _joiner(fit: Fit) -> str:
    """"E1 error ~ m^-0.47 [...]" for a fitted law, "E1 error: no fit (...)" without one."""
    return " ~ " if math.isfinite(fit.slope) else ": "


def judge_order(claim: str, table: pd.DataFrame, group: str, y: str, order: Sequence,
                seed: str = "seed", n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95,
                min_seeds: int = 2, aggregate: Aggregate = "median") -> Verdict:
    """Judge "order[0] < order[1] < ... by y" (e.g. He < LeCun < NTK by final loss) by bootstrap.

    The runs of each group are resampled with replacement and their medians (means, with
    aggregate="mean") compared. Support is the fraction of resamples where the whole order holds:
    consistent when support >= ci; inconsistent when some adjacent pair is reversed in at least a
    fraction ci of resamples; inconclusive otherwise. The measured text lists each group's median
    (mean) with its percentile interval.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate = {aggregate!r}: expected 'median' or 'mean' (over seeds)")
    centre = AGGREGATES[aggregate]
    for name in (group, y):
        if name not in table.columns:
            raise ValueError(f"column {name!r} is not in the table; columns are {sorted(map(str, table.columns))}")
    if len(order) < 2:
        raise ValueError(f"order = {list(order)!r}: an ordering needs two or more groups")
    prediction = " < ".join(map(str, order)) + f" by {y}"
    values = []
    for g in order:
        v = pd.to_numeric(table.loc[table[group] == g, y], errors="coerce").to_numpy(dtype=float)
        values.append(v[np.isfinite(v)])
    rng = np.random.default_rng(stream_seed(rng_seed, "report.order.bootstrap"))
    tail = (1 - ci) / 2
    boot, parts = [], []
    for g, v in zip(order, values):
        if len(v) == 0:
            parts.append(f"{g}: no runs")
            boot.append(np.full(n_boot, math.nan))
            continue
        b = centre(v[rng.integers(0, len(v), size=(n_boot, len(v)))], axis=1)
        boot.append(b)
        lo, hi = np.quantile(b, [tail, 1 - tail])
        parts.append(f"{g} {centre(v):.3g} [{lo:.3g}, {hi:.3g}]")
    boot = np.stack(boot)  # (groups, n_boot)
    holds = np.all(boot[:-1] < boot[1:], axis=0)
    support = float(holds.mean())
    reversed_pair = max(float(np.mean(boot[i] > boot[i + 1])) for i in range(len(order) - 1))
    n_min = min(len(v) for v in values)
    measured = (("means: " if aggregate == "mean" else "") + ", ".join(parts)
                + f"; order holds in {support:.0%} of resamples")
    if n_min < min_seeds:
        status, reason = "inconclusive", f"{n_min} run(s) in some group, fewer than {min_seeds}"
    elif support >= ci:
        status, reason = "consistent", ""
    elif reversed_pair >= ci:
        status, reason = "inconsistent", ""
    else:
        status, reason = "inconclusive", f"order holds in {support:.0%} of resamples (< {ci:.0%})"
    return Verdict(claim, prediction, measured, status, support, math.nan, math.nan, reason)


def judge_bound(claim: str, values: Sequence[float], *, at_least: float | None = None,
                at_most: float | None = None, baseline: Sequence[float] | None = None, unit: str = "",
                n_boot: int = 2000, rng_seed: int = 0, ci: float = 0.95, min_seeds: int = 2) -> Verdict:
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
    elif at_least is not None or at_most is not None:
        prediction = f"{'>=' if at_least is not None else '<='} {at_least if at_least is not None else at_most:.3g}{unit}"
    else:
        prediction = "—"
    n_min = min(len(g) for g in groups)
    if n_min == 0:
        status = "measured" if prediction == "—" else "inconclusive"
        return Verdict(claim, prediction, "no finite runs", status, reason="no finite runs")
    rng = np.random.default_rng(stream_seed(rng_seed, "report.bound.bootstrap"))
    boot = [g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1) for g in groups]
    estimate = groups[0].mean() / (groups[1].mean() if baseline is not None else 1.0)
    resampled = boot[0] / (boot[1] if baseline is not None else 1.0)
    tail = (1 - ci) / 2
    low, high = (float(q) for q in np.nanquantile(resampled, [tail, 1 - tail]))
    measured = f"{estimate:.3g}{unit} [{low:.3g}, {high:.3g}]"
    if prediction == "—":
        return Verdict(claim, prediction, measured, "measured", float(estimate), low, high)
    floor = -math.inf if at_least is None else at_least
    ceiling = math.inf if at_most is None else at_most
    reason = ""
    if n_min < min_seeds:
        status, reason = "inconclusive", f"{n_min} run(s), fewer than {min_seeds}"
    elif not all(math.isfinite(v) for v in (estimate, low, high)):
        status, reason = "inconclusive", "no finite interval"
    elif floor <= low and high <= ceiling:
        status = "consistent"
    elif high < floor or low > ceiling:
        status = "inconsistent"
    else:
        status, reason = "inconclusive", "interval crosses a bound"
    return Verdict(claim, prediction, measured, status, float(estimate), low, high, reason)
