"""From a tidy table to a judged, plotted ExperimentResult in one call.

An experiment collects one row per run (columns such as m, seed, error), then

    result = scaling_experiment("E1", "approximation error", table, x="m", y="error",
                                predictions=SlopePrediction(slope=-0.5), figure_dir=out / "figures")
    write_report([result, ...], out, title="Arda et al. 2026")

which fits the law (power, log or exp) with a bootstrap-over-seeds interval, judges it (against a
predicted slope, a direction, a bound independent of x, or nothing), draws the mean with its 95%
band, the median and the fitted law (PNG + PDF), and packs table, figure and verdicts together.
ordering_experiment, bound_experiment and every_experiment do the same for an ordering of groups, a
bound on a mean or a ratio of means, and a bound on every run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnlab.report.figures import (PALETTE, new_figure, plot_groups, plot_scaling, plot_stacked,
                                    pooled_block_statistics, save_figure, seed_statistics)
from attnlab.report.fit import Aggregate, FitKind, fit_trend, symbol
from attnlab.report.result import ExperimentResult
from attnlab.report.verdict import SlopePrediction, judge_bound, judge_every, judge_order


def scaling_experiment(key: str, quantity: str, table: pd.DataFrame, x: str, y: str, *,
                       figure_dir: str | Path, kind: FitKind = "power",
                       predictions: SlopePrediction | dict[Any, SlopePrediction] | None = None,
                       hue: str | None = None, aggregate: Aggregate = "median",
                       level: tuple[float, str] | None = None, bound_column: str | None = None,
                       figure_suffix: str = "", n_boot: int = 2000) -> ExperimentResult:
    """Fit, judge and plot `y` against `x` of a tidy table (one row per run: columns x, y, seed, and
    hue when given, whose values get one series, fit and verdict each, on one figure).

    kind: "power" (y ~ x^a, log-log axes), "log" (y ~ a log x, log x axis), "exp" (y ~ exp(a x), log
    y axis); the line is fitted to the `aggregate` ("median" or "mean") of y over seeds. predictions:
    what the slope is judged against, for every series or per hue value (a value left out: a plain
    measurement). The verdict reads "<key> <quantity>[ (hue=v)] ~ m^-0.47 [-0.55, -0.40]:
    consistent with m^-1/2". level: (value, label), a horizontal reference line; bound_column: a
    column of each run's analytic bound on y, drawn (median over seeds) dashed in the series' colour.
    The figure is written to FIGURE_DIR/<key>_<y>_vs_<x>[_<figure_suffix>].png and .pdf.
    """
    fig, ax = new_figure()
    if level is not None:  # drawn first: each series' legend then lists it
        ax.axhline(level[0], color="0.35", linestyle=(0, (4, 2)), linewidth=1.0, label=level[1])
    verdicts, fits = [], []
    for value, label, group in _series(key, table, x, y, hue, predictions):
        fit = fit_trend(group, x, y, kind, n_boot=n_boot, aggregate=aggregate)
        test = (predictions.get(value) if isinstance(predictions, dict) else predictions) or SlopePrediction()
        verdicts.append(test.judge(f"{key} {quantity}" + (f" ({label})" if label else ""), fit))
        fits.append({"series": label or quantity, **fit.to_dict()})
        color = PALETTE[len(ax.collections) % len(PALETTE)]   # the colour plot_scaling gives this series
        if bound_column is not None:   # drawn first: the series' legend then lists it
            _plot_bound(ax, group, x, bound_column, "analytic bound" + (f" ({label})" if label else ""), color)
        positive = bool((pd.to_numeric(group[y], errors="coerce").dropna() > 0).all())
        reference = test.slope if kind == "power" and hue is None else None
        plot_scaling(group, x, y, fit=fit if math.isfinite(fit.slope) else None, ax=ax, label=label or quantity,
                     logx=kind != "exp", logy=positive and kind != "log", color=color, reference=reference)
    ax.set_title(f"{key}: {quantity}")
    suffix = f"_{_slug(figure_suffix)}" if figure_suffix else ""
    png, _ = save_figure(fig, Path(figure_dir) / f"{_slug(key)}_{_slug(y)}_vs_{_slug(x)}{suffix}")
    return ExperimentResult(key=key, title=f"{quantity} against {symbol(x)}", verdicts=verdicts, figures=[png],
                            table=_summary_table(table, x, y, "seed", hue), notes=_fits_note(pd.DataFrame(fits)))


def _series(key: str, table: pd.DataFrame, x: str, y: str, hue: str | None,
            predictions: Any) -> list[tuple[Any, str, pd.DataFrame]]:
    """(hue value, label such as "T=4", rows) of each series, after checking the columns and that
    predictions per series name values of hue."""
    for name in (x, y, "seed", *([hue] if hue else [])):
        if name not in table.columns:
            raise ValueError(f"experiment {key}: column {name!r} is not in the table; "
                             f"columns are {sorted(map(str, table.columns))}")
    if table.empty:
        raise ValueError(f"experiment {key}: the table has no rows")
    if isinstance(predictions, dict) and hue is None:
        raise ValueError("predictions given per series need hue (the column their keys are values of)")
    if hue is None:
        return [(None, "", table)]
    unknown = set(predictions) - set(table[hue]) if isinstance(predictions, dict) else set()
    if unknown:
        raise ValueError(f"experiment {key}: {sorted(map(str, unknown))} are not values of {hue!r}; "
                         f"its values are {sorted(map(str, table[hue].unique()))}")
    return [(v, f"{symbol(hue)}={_text(v)}", g) for v, g in table.groupby(hue, sort=True)]


def _plot_bound(ax: Any, group: pd.DataFrame, x: str, column: str, label: str, color: str) -> None:
    """The median over seeds of each run's bound (`column`) against x, as a long-dashed line."""
    if column not in group.columns:
        raise ValueError(f"bound column {column!r} is not in the table; columns are {sorted(map(str, group.columns))}")
    values = group[[x, column]].apply(pd.to_numeric, errors="coerce").dropna()
    if values.empty:
        return
    medians = values.groupby(x)[column].median()
    ax.plot(medians.index.to_numpy(dtype=float), medians.to_numpy(dtype=float), linestyle=(0, (6, 2)),
            color=color, linewidth=1.4, alpha=0.9, label=label)


def every_experiment(key: str, quantity: str, table: pd.DataFrame, y: str, at_most: float,
                     hue: str | None = None) -> ExperimentResult:
    """Judge "every run's y is at most `at_most`" (verdict.judge_every), per hue value; no figure."""
    if y not in table.columns:
        raise ValueError(f"experiment {key}: column {y!r} is not in the table; "
                         f"columns are {sorted(map(str, table.columns))}")
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=True))
    verdicts = [judge_every(f"{key} {quantity}" + (f" ({symbol(hue)}={_text(v)})" if hue else ""),
                            pd.to_numeric(g[y], errors="coerce").to_numpy(dtype=float), at_most)
                for v, g in groups]
    return ExperimentResult(key=key, title=quantity, table=pd.DataFrame(), verdicts=verdicts)


def ordering_experiment(key: str, quantity: str, table: pd.DataFrame, group: str, y: str, order: list, *,
                        figure_dir: str | Path, x: str | None = None, at: Any = None,
                        aggregate: Aggregate = "median", n_boot: int = 2000) -> ExperimentResult:
    """Judge "order[0] < order[1] < ... by y" (e.g. He < LeCun < NTK by loss at step k) and plot it.

    table: one row per run, columns group, y, seed. The verdict (judge_order) is consistent when the
    order of the groups' medians (means, with aggregate="mean") holds in >= 95% of bootstrap
    resamples over seeds, inconsistent when an adjacent pair is reversed in >= 95%. With `at` (a
    value of column x, "smallest" or "largest") only the runs at that x count ("E4 MSE at L=72").
    The figure (runs as dots, medians with intervals) goes to
    FIGURE_DIR/<key>_<y>_by_<group>[_at_<x>=<value>].png and .pdf.
    """
    for name in (group, y, "seed", *([x] if at is not None else [])):
        if name not in table.columns:
            raise ValueError(f"experiment {key}: column {name!r} is not in the table; "
                             f"columns are {sorted(map(str, table.columns))}")
    figure_suffix = ""
    if at is not None:
        where = f"{symbol(x)}={resolve_at(table, x, at):g}"
        table, quantity, figure_suffix = rows_at(table, x, at), f"{quantity} at {where}", f"_at_{where}"
    verdict = judge_order(f"{key} {quantity}", table, group, y, order, n_boot=n_boot, aggregate=aggregate)
    logy = bool((pd.to_numeric(table[y], errors="coerce").dropna() > 0).all())
    fig, ax = new_figure()
    plot_groups(table, group, y, order=order, ax=ax, logy=logy, n_boot=n_boot, aggregate=aggregate)
    ax.set_title(f"{key}: {quantity}", pad=12)
    png, _ = save_figure(fig, Path(figure_dir) / f"{_slug(key)}_{_slug(y)}_by_{_slug(group)}{_slug(figure_suffix)}")
    summary = _summary_table(table[table[group].isin(order)], group, y, "seed", None)
    return ExperimentResult(key=key, title=f"{quantity} by {symbol(group)}", table=summary, verdicts=[verdict],
                            figures=[png])


def resolve_at(table: pd.DataFrame, x: str, at: Any) -> float:
    """The value of column x that `at` names: a number present in the table, "smallest" or "largest"."""
    values = sorted(pd.to_numeric(table[x], errors="coerce").dropna().unique())
    if not values:
        raise ValueError(f"column {x!r} has no numeric values")
    if at in ("smallest", "largest"):
        return float(values[0] if at == "smallest" else values[-1])
    matches = [v for v in values if math.isclose(v, float(at), rel_tol=1e-9)]
    if not matches:
        raise ValueError(f"at = {at!r}: {symbol(x)} takes the values {', '.join(f'{v:g}' for v in values)}")
    return float(matches[0])


def rows_at(table: pd.DataFrame, x: str, at: Any) -> pd.DataFrame:
    """The rows of `table` whose x equals the value `at` names (see resolve_at)."""
    value = resolve_at(table, x, at)
    return table[[math.isclose(v, value, rel_tol=1e-9) for v in pd.to_numeric(table[x], errors="coerce")]]


def bound_experiment(key: str, quantity: str, table: pd.DataFrame, x: str, y: str, *,
                     at: Any = None, between: tuple[Any, Any] | None = None,
                     at_least: float | dict[Any, float] | None = None,
                     at_most: float | dict[Any, float] | None = None, hue: str | None = None,
                     n_boot: int = 2000) -> ExperimentResult:
    """Judge a bound on the mean of y at one x (`at`: a value, "smallest" or "largest"), or on the
    ratio of its means at two (`between` = (x0, x1): mean y(x1) / mean y(x0)), per hue value.

    E.g. "the IndRNN's gradient norm grows by at least 5x from L = 4 to L = 72": between=(4, 72),
    at_least={"indrnn": 5}; "training accuracy reaches 100% at the largest width": at="largest",
    at_least=1.0. A hue value without a bound gets a measured row. No figure (the scaling figure of
    the same metric shows the values).
    """
    for name in (x, y, "seed", *([hue] if hue else [])):
        if name not in table.columns:
            raise ValueError(f"experiment {key}: column {name!r} is not in the table; "
                             f"columns are {sorted(map(str, table.columns))}")
    points = [at] if at is not None else list(between)
    values = [resolve_at(table, x, p) for p in points]
    where = " / ".join(f"{symbol(x)}={v:g}" for v in reversed(values))
    name = f"{key} {quantity}" + (" ratio " if between is not None else " at ") + where
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=True))
    verdicts = []
    for value, group in groups:
        low = at_least.get(value) if isinstance(at_least, dict) else at_least
        high = at_most.get(value) if isinstance(at_most, dict) else at_most
        samples = [pd.to_numeric(rows_at(group, x, v)[y], errors="coerce").to_numpy(dtype=float) for v in values]
        verdicts.append(judge_bound(name + (f" ({symbol(hue)}={_text(value)})" if hue else ""), samples[-1],
                                    baseline=samples[0] if between is not None else None, at_least=low,
                                    at_most=high, unit="x" if between is not None else "", n_boot=n_boot))
    chosen = pd.concat([rows_at(table, x, v) for v in values])
    return ExperimentResult(key=key, title=name.removeprefix(f"{key} "), verdicts=verdicts,
                            table=_summary_table(chosen, x, y, "seed", hue))


def stacked_figure(key: str, name: str, title: str, table: pd.DataFrame, x: str,
                   rows: list[tuple[str, str, bool, bool]], *, figure_dir: str | Path, hue: str | None = None,
                   labels: dict[Any, str] | None = None, logx: bool = False) -> ExperimentResult:
    """Panels stacked top to bottom sharing x, no verdicts: for each row (quantity, metric, pooled,
    log_y) one line per hue value against x.

    Not pooled: the mean of `metric` over seeds with the band mean -/+ 1.96 sd / sqrt(runs). Pooled:
    the columns <metric>.mean, .sd and .count hold each run's block statistics, and every run's
    blocks at one x are pooled (pooled_block_statistics): mean -/+ 1.96 sd / sqrt(blocks). The
    figure goes to FIGURE_DIR/<key>_<name>.png and .pdf; the table (and the notes) give the numbers
    drawn."""
    labels = labels or {}
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=True))
    panels, drawn = [], []
    for quantity, metric, pooled, logy in rows:
        lines = []
        for value, group in groups:
            stats = _band_statistics(group, x, metric, pooled)
            label = labels.get(value, quantity if value is None else _text(value))
            lines.append((label, stats))
            drawn.append(stats.assign(series=label, quantity=quantity))
        panels.append((quantity, lines, logy))
    xs = sorted(pd.to_numeric(table[x], errors="coerce").dropna().unique())
    fig = plot_stacked(panels, x, xs, title=f"{key}: {title}", logx=logx)
    png, _ = save_figure(fig, Path(figure_dir) / f"{_slug(key)}_{_slug(name)}")
    numbers = pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()
    return ExperimentResult(key=key, title=title, table=numbers, figures=[png], config={},
                            notes=_stacked_note(title, numbers, x))


def _band_statistics(group: pd.DataFrame, x: str, metric: str, pooled: bool) -> pd.DataFrame:
    """Per x value: mean, low, high and n (runs, or blocks when pooled) of one series."""
    if not pooled:
        if metric not in group.columns:
            raise ValueError(f"column {metric!r} is not in the table; columns are {sorted(map(str, group.columns))}")
        return seed_statistics(group, x, metric)[[x, "mean", "low", "high", "n"]]
    columns = [f"{metric}.{part}" for part in ("mean", "sd", "count")]
    missing = [c for c in columns if c not in group.columns]
    if missing:
        raise ValueError(f"pooled {metric!r} needs the columns {columns}; {missing} are not in the table")
    values = group[[x, *columns]].apply(pd.to_numeric, errors="coerce")
    rows = [{x: v, **pooled_block_statistics(*(runs[c] for c in columns))} for v, runs in values.groupby(x, sort=True)]
    stats = pd.DataFrame(rows, columns=[x, "mean", "sd", "n", "low", "high"])
    return stats.loc[np.isfinite(stats["mean"].to_numpy(dtype=float)), [x, "mean", "low", "high", "n"]]


def _stacked_note(title: str, numbers: pd.DataFrame, x: str) -> str:
    """The numbers a stacked figure draws, one sentence per panel."""
    if numbers.empty:
        return f"{title}: nothing to draw (no finished runs)."
    parts = []
    for quantity, rows in numbers.groupby("quantity", sort=False):
        series = [f"{s}: " + ", ".join(f"{symbol(x)}={r[x]:g} {r['mean']:.3g} [{r['low']:.3g}, {r['high']:.3g}]"
                                       for _, r in part.iterrows())
                  for s, part in rows.groupby("series", sort=False)]
        parts.append(f"{quantity}: " + "; ".join(series))
    return f"{title} (mean [95% band]): " + ". ".join(parts) + "."


def _summary_table(table: pd.DataFrame, x: str, y: str, seed: str, hue: str | None) -> pd.DataFrame:
    """Per (hue, x): runs, mean, median, sd, min, max of y over seeds."""
    keys = [hue, x] if hue else [x]
    values = table[keys + [y]].copy()
    values[y] = pd.to_numeric(values[y], errors="coerce")
    grouped = values.groupby(keys, sort=True)[y]
    out = pd.DataFrame({"runs": grouped.size(), "finite": grouped.count(), "mean": grouped.mean(),
                        "median": grouped.median(), "sd": grouped.std(ddof=1), "min": grouped.min(),
                        "max": grouped.max()}).reset_index()
    return out.rename(columns={"mean": f"mean {y}", "median": f"median {y}"})


def _fits_note(fits: pd.DataFrame) -> str:
    rows = [f"{r.series}: {r.measured} ({r.n_points} points, >= {r.n_seeds} seeds per point"
            + (f", {r.n_dropped} rows dropped" if r.n_dropped else "") + ")" for r in fits.itertuples()]
    centre = "means" if (fits["aggregate"] == "mean").all() else "medians"
    return f"Fitted on {centre} over seeds, 95% percentile bootstrap over seeds. " + "; ".join(rows) + "."


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(name))
