"""Scaling-law fits with bootstrap intervals, and the one percentile bootstrap of the report.

A fit takes a tidy table (one row per run: an axis column x, a metric column y, a seed column),
reduces it to the median of y at each x value (or the mean: `aggregate="mean"`, as a paper that
plots means over seeds does), and fits a straight line by least squares:

    power:  log median(y) = intercept + slope * log x        (y ~ x^slope)
    log:    median(y)     = intercept + slope * log x        (or log median(y) with log_y=True)
    exp:    log median(y) = intercept + slope * x            (y ~ exp(slope * x): linear convergence)

The interval of the slope is a percentile bootstrap over seeds (`bootstrap`): the runs at each x
value are resampled with replacement, the medians (means) recomputed and the line refitted,
`n_boot` times. Where one run is measured at several x values (a curve: x is the step; the table
names each row's run in a `run_id` column), whole runs are resampled instead (`bootstrap_runs`),
since a run's values at neighbouring steps move together. Verdicts on fits are in verdict.py.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd

from attnlab.seeding import stream_seed

FitKind = Literal["power", "log", "exp"]
Aggregate = Literal["median", "mean"]
AGGREGATES = {"median": np.median, "mean": np.mean}
NAN_AGGREGATES = {"median": np.nanmedian, "mean": np.nanmean}
RUN = "run_id"   # the column naming each row's run, where a run has rows at several x values


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


def fraction_text(value: float) -> str:
    """A slope as written in a law: -0.5 -> "-1/2", 2.0 -> "2", 0.3183 -> "0.318"."""
    frac = Fraction(value).limit_denominator(12)
    if abs(float(frac) - value) > 1e-9:
        return f"{value:.3g}"
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


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


def checked_centre(table: pd.DataFrame, columns: Sequence[str], aggregate: str) -> Callable:
    """The aggregate over seeds named `aggregate`, once `table` is known to hold `columns`."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate = {aggregate!r}: expected 'median' or 'mean' (over seeds)")
    for name in columns:
        if name not in table.columns:
            raise ValueError(f"column {name!r} is not in the table; columns are {sorted(map(str, table.columns))}")
    return AGGREGATES[aggregate]


def _fit(table: pd.DataFrame, x: str, y: str, seed: str, kind: FitKind, log_x: bool, log_y: bool,
         n_boot: int, rng_seed: int, ci: float, aggregate: Aggregate = "median") -> Fit:
    centre = checked_centre(table, (x, y), aggregate)
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
    if RUN in table.columns and table.loc[finite].groupby(RUN)[x].nunique().max() > 1:
        runs = table.loc[finite].pivot(index=RUN, columns=x, values=y).reindex(columns=values).to_numpy(float)
        boot = bootstrap_runs(runs, NAN_AGGREGATES[aggregate], n_boot, rng_seed, "report.fit.bootstrap")
        n_seeds = runs.shape[0]
    else:
        boot = np.ascontiguousarray(bootstrap(groups, centre, n_boot, rng_seed, "report.fit.bootstrap").T)
    boot_slopes, _ = _least_squares(t, _maybe_log(boot, log_y))
    low, high = percentiles(boot_slopes, ci)
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


# ------------------------------------------------------------------------------------ bootstrap


def bootstrap(groups: Sequence[np.ndarray], centre: Callable[..., np.ndarray], n_boot: int, rng_seed: int,
              stream: str) -> np.ndarray:
    """The percentile bootstrap: `centre` (np.median or np.mean) of n_boot resamples with replacement
    of each group (G groups, each an (n_g,) array) on its own; (G, n_boot), a NaN row for an empty
    group. The groups draw in order from the random stream `stream` of rng_seed."""
    rng = np.random.default_rng(stream_seed(rng_seed, stream))
    samples = np.full((len(groups), n_boot), math.nan)
    for j, g in enumerate(groups):
        if len(g):
            samples[j] = centre(g[rng.integers(0, len(g), size=(n_boot, len(g)))], axis=1)
    return samples


def bootstrap_runs(runs: np.ndarray, centre: Callable[..., np.ndarray], n_boot: int, rng_seed: int,
                   stream: str) -> np.ndarray:
    """The percentile bootstrap of whole runs: `centre` (np.nanmedian or np.nanmean) over the runs of
    n_boot resamples with replacement of the rows of `runs` (R runs, P x values; NaN where a run has
    no value); (n_boot, P)."""
    rng = np.random.default_rng(stream_seed(rng_seed, stream))
    picks = rng.integers(0, runs.shape[0], size=(n_boot, runs.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an x value that no resampled run reached
        return centre(runs[picks], axis=1)


def percentiles(samples: np.ndarray, ci: float) -> tuple[float, float]:
    """The central `ci` percentile interval (low, high) of bootstrap samples (n_boot,), NaNs left out."""
    tail = (1 - ci) / 2
    low, high = np.nanquantile(samples, [tail, 1 - tail])
    return float(low), float(high)
