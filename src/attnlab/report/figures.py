"""Paper-style figures: scaling plots with seed bands and fitted laws, loss curves, PNG + PDF output.

Figures are built on matplotlib's object API (no pyplot state, Agg rendering), and the style is
applied with a context around each drawing call, so importing this module changes nothing global.

    fig, ax = new_figure()
    plot_scaling(table, "model.m", "best.train_loss", fit=fit_power_law(table, "model.m", "best.train_loss"), ax=ax)
    save_figure(fig, out / "e3_train_loss")     # e3_train_loss.png and e3_train_loss.pdf
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from attnlab.report.fit import AGGREGATES, Fit, bootstrap, fraction_text, percentiles, symbol
from attnlab.store import atomic_write

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "legend.frameon": False,
    "pdf.fonttype": 42,
}
PALETTE = ("#1f5fa8", "#d1495b", "#2e8b57", "#e08e0b", "#7b4fa0", "#4a4a4a", "#00a6a6", "#a0522d")
FIGSIZE = (4.4, 3.8)
DPI = 150
Z_95 = 1.96


def new_figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = FIGSIZE) -> tuple[Figure, Any]:
    """A styled figure of nrows x ncols panels, each `size` inches; returns (fig, ax or axes array)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), dpi=DPI, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True)
    return fig, axes


def seed_statistics(table: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per x value: mean, median, sd, count, min of y and the 95% band of the mean (finite y only).

    Returns columns x, mean, median, sd, n, min, low, high sorted by x, with
    low/high = mean -/+ 1.96 sd / sqrt(n) (sd = 0 for a single run).
    """
    data = table[[x, y]].copy()
    data[y] = pd.to_numeric(data[y], errors="coerce")
    data = data[np.isfinite(data[y])]
    grouped = data.groupby(x, sort=True)[y]
    stats = pd.DataFrame({"mean": grouped.mean(), "median": grouped.median(), "sd": grouped.std(ddof=1),
                          "n": grouped.size(), "min": grouped.min()}).reset_index()
    stats["sd"] = stats["sd"].fillna(0.0)
    half = Z_95 * stats["sd"] / np.sqrt(stats["n"])
    stats["low"], stats["high"] = stats["mean"] - half, stats["mean"] + half
    return stats


def pooled_block_statistics(means: Sequence[float], sds: Sequence[float],
                            counts: Sequence[float]) -> dict[str, float]:
    """Pool several runs' block maxima (each run: their mean, sd with ddof 1, and count) into the
    statistics of all blocks together: mean, sd (ddof 1), n and the band mean -/+ 1.96 sd / sqrt(n).

    Exact: the same numbers as computing them on every block maximum at once (the published E4
    figure cuts the appended per-step log of all seeds into blocks; with steps a multiple of the
    block length, no block straddles two runs, so these are its numbers). Runs without a block are
    left out; NaN statistics when no block remains."""
    m, s, n = (np.asarray(v, dtype=float) for v in (means, sds, counts))
    keep = (n > 0) & np.isfinite(m)
    m, s, n = m[keep], s[keep], n[keep]
    total = float(n.sum())
    if total == 0:
        return {"mean": math.nan, "sd": math.nan, "n": 0, "low": math.nan, "high": math.nan}
    mean = float((n * m).sum() / total)
    within = np.where(n > 1, (n - 1) * np.nan_to_num(s) ** 2, 0.0).sum()
    sd = math.sqrt((within + float((n * (m - mean) ** 2).sum())) / (total - 1)) if total > 1 else math.nan
    half = Z_95 * sd / math.sqrt(total)
    return {"mean": mean, "sd": sd, "n": int(total), "low": mean - half, "high": mean + half}


def plot_scaling(table: pd.DataFrame, x: str, y: str, fit: Fit | None = None, ax: Axes | None = None,
                 label: str | None = None, logx: bool = True, logy: bool = True,
                 reference: float | tuple[float, str] | None = None, color: str | None = None) -> Axes:
    """Plot y against x across seeds: the mean with its 95% band, the median, the fitted law.

    table: one row per run (columns x and y). fit: drawn dashed over the x range and written on
    the plot as "~ m^alpha [lo, hi]". reference: a theory slope (or (slope, label)) drawn dotted
    through the medians' geometric centre, e.g. -0.5 for m^-1/2. Returns the axes.
    """
    for name in (x, y):
        if name not in table.columns:
            raise ValueError(f"column {name!r} is not in the table; columns are {sorted(map(str, table.columns))}")
    if ax is None:
        _, ax = new_figure()
    if color is None:  # one palette colour per series already on the axes (each has one band)
        color = PALETTE[len(ax.collections) % len(PALETTE)]
    stats = seed_statistics(table, x, y)
    with matplotlib.rc_context(STYLE):
        if stats.empty:
            ax.text(0.5, 0.5, f"no finite {y}", transform=ax.transAxes, ha="center", va="center")
            return ax
        xs = stats[x].to_numpy(dtype=float)
        low = stats["low"].to_numpy(dtype=float)
        if logy:  # the mean of positive values is at least their minimum: clip the band there
            low = np.maximum(low, stats["min"].to_numpy(dtype=float))
        name = label or _pretty(y)
        if fit is not None and math.isfinite(fit.slope):
            name = f"{name}  {_fit_label(fit)}"
        ax.fill_between(xs, low, stats["high"], color=color, alpha=0.18, linewidth=0)
        ax.plot(xs, stats["mean"], "-o", color=color, label=name)
        ax.plot(xs, stats["median"], ":", marker="s", markersize=3, color=color, alpha=0.8)
        if fit is not None and math.isfinite(fit.slope):
            grid = np.geomspace(xs.min(), xs.max(), 50) if logx else np.linspace(xs.min(), xs.max(), 50)
            ax.plot(grid, fit.predict(grid), "--", color=color, linewidth=1.1)
        if reference is not None:
            slope, ref_label = reference if isinstance(reference, tuple) else (
                reference, rf"theory ${_math_symbol(symbol(x))}^{{{fraction_text(reference)}}}$")
            centre_x = math.exp(np.mean(np.log(xs)))
            centre_y = math.exp(np.mean(np.log(np.maximum(stats["median"].to_numpy(dtype=float), 1e-300))))
            ax.plot(xs, centre_y * (xs / centre_x) ** slope, color="0.35", linestyle=(0, (1, 2)),
                    linewidth=1.2, label=ref_label)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.set_xlabel(_pretty(x))
        ax.set_ylabel(_pretty(y))
        if logx and len(xs) <= 12:
            ax.set_xticks(xs, [f"{v:g}" for v in xs])
            ax.xaxis.set_minor_locator(NullLocator())
        _legend_below(ax, int(stats["n"].min()), int(stats["n"].max()))
    return ax


def plot_stacked(panels: Sequence[tuple[str, Sequence[tuple[str, pd.DataFrame]], bool]], x: str,
                 ticks: Sequence[float], title: str = "", logx: bool = False) -> Figure:
    """Panels stacked top to bottom sharing the x axis (ticks at `ticks`, labelled on the lowest).

    panels: (y label, lines, log y) from the top; lines: (label, stats) with stats columns x, mean,
    low, high (one row per x value), each drawn as its mean with the band [low, high] shaded. On a
    log axis a band reaching zero or below is cut at a millionth of the line's smallest mean."""
    fig, axes = new_figure(nrows=len(panels), size=(FIGSIZE[0], 2.6))
    axes = list(np.atleast_1d(axes))
    with matplotlib.rc_context(STYLE):
        for ax, (ylabel, lines, logy) in zip(axes, panels):
            for i, (label, stats) in enumerate(lines):
                stats = stats.sort_values(x)
                xs = stats[x].to_numpy(dtype=float)
                mean, low, high = (stats[c].to_numpy(dtype=float) for c in ("mean", "low", "high"))
                if logy and np.any(mean > 0):
                    low = np.maximum(low, 1e-6 * mean[mean > 0].min())
                color = PALETTE[i % len(PALETTE)]
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
                ax.plot(xs, mean, "-", marker="os^Dv"[i % 5], color=color, label=label)
            ax.set_xscale("log" if logx else "linear")
            ax.set_yscale("log" if logy else "linear")
            ax.set_ylabel(ylabel)
            ax.set_xticks(list(ticks), [f"{v:g}" for v in ticks] if ax is axes[-1] else [])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.legend(loc="best")
        axes[-1].set_xlabel(_pretty(x))
        if title:
            axes[0].set_title(title)
        fig.align_ylabels(axes)
    return fig


def _fit_label(fit: Fit) -> str:
    """The fit as mathtext: "~ m^{-0.47} [-0.55, -0.40]"."""
    if fit.kind != "power" or not fit.ok:
        return ("~ " if fit.kind == "exp" else "") + fit.describe()
    sym = _math_symbol(symbol(fit.x))
    return rf"$\sim {sym}^{{{fit.slope:.2f}}}$  [{fit.ci_low:.2f}, {fit.ci_high:.2f}]"


def _math_symbol(name: str) -> str:
    return name if name.isalnum() else r"\mathrm{" + name.replace("_", r"\_") + "}"


def _legend_below(ax: Axes, n_min: int, n_max: int) -> None:
    """The legend under the axes (it never hides data), titled with what the lines are; the seed
    counts accumulate over the series drawn on these axes."""
    low, high = getattr(ax, "_attnlab_seeds", (n_min, n_max))
    low, high = min(low, n_min), max(high, n_max)
    ax._attnlab_seeds = (low, high)
    seeds = f"{low}" if low == high else f"{low}-{high}"
    entries = len(ax.get_legend_handles_labels()[1])
    grown = getattr(ax, "_attnlab_entries", 2)
    if entries > grown:  # one more legend line: a taller figure, so the axes keep their height
        width, height = ax.figure.get_size_inches()
        ax.figure.set_size_inches(width, height + 0.16 * (entries - grown))
        ax._attnlab_entries = entries
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1,
              title=f"solid: mean, 95% band ({seeds} seeds); dotted: median; dashed: fit",
              title_fontsize=6.5, fontsize=7.5)


def plot_curves(curves_table: pd.DataFrame, x: str = "step", y: str = "train_loss", hue: str = "model.m",
                ax: Axes | None = None, logx: bool = False, logy: bool = True,
                hue_order: Sequence | None = None, band: bool = True) -> Axes:
    """Curves of y against x (e.g. loss against step), one line per hue value: mean and 95% band.

    curves_table: long format, one row per (run, recorded step) with columns x, y and hue.
    """
    for name in (x, y, hue):
        if name not in curves_table.columns:
            raise ValueError(f"column {name!r} is not in the curves table; "
                             f"columns are {sorted(map(str, curves_table.columns))}")
    if ax is None:
        _, ax = new_figure()
    values = list(hue_order) if hue_order is not None else sorted(curves_table[hue].dropna().unique())
    colours = _sequential_colours(len(values))
    with matplotlib.rc_context(STYLE):
        for value, colour in zip(values, colours):
            stats = seed_statistics(curves_table[curves_table[hue] == value], x, y)
            if stats.empty:
                continue
            xs = stats[x].to_numpy(dtype=float)
            if band and stats["n"].max() > 1:
                low = stats["low"].to_numpy(dtype=float)
                if logy:
                    low = np.maximum(low, stats["min"].to_numpy(dtype=float))
                ax.fill_between(xs, low, stats["high"], color=colour, alpha=0.2, linewidth=0)
            ax.plot(xs, stats["mean"], color=colour, label=f"{symbol(hue)} = {_value_text(value)}")
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.set_xlabel(_pretty(x))
        ax.set_ylabel(_pretty(y))
        ax.legend(loc="best", title=None)
    return ax


def plot_groups(table: pd.DataFrame, group: str, y: str, order: Sequence | None = None,
                ax: Axes | None = None, logy: bool = True, ci: float = 0.95, n_boot: int = 2000,
                rng_seed: int = 0, aggregate: str = "median") -> Axes:
    """One column per group value: every run as a dot, the median (or mean: aggregate="mean") as a
    bar with its bootstrap interval.

    table: one row per run with columns group and y. order: the groups left to right (default sorted).
    The interval is the percentile bootstrap of the median (mean) over the group's runs (as in
    judge_order).
    """
    centre = AGGREGATES[aggregate]
    for name in (group, y):
        if name not in table.columns:
            raise ValueError(f"column {name!r} is not in the table; columns are {sorted(map(str, table.columns))}")
    if ax is None:
        _, ax = new_figure()
    values = list(order) if order is not None else sorted(table[group].dropna().unique(), key=str)
    runs = [pd.to_numeric(table.loc[table[group] == value, y], errors="coerce").to_numpy(dtype=float)
            for value in values]
    runs = [v[np.isfinite(v)] for v in runs]
    boot = bootstrap(runs, centre, n_boot, rng_seed, "report.groups.bootstrap")
    with matplotlib.rc_context(STYLE):
        for i, (v, samples) in enumerate(zip(runs, boot)):
            colour = PALETTE[i % len(PALETTE)]
            if len(v) == 0:
                ax.text(i, 0.5, "no runs", transform=ax.get_xaxis_transform(), ha="center", color="0.4")
                continue
            jitter = (np.arange(len(v)) - (len(v) - 1) / 2) * min(0.04, 0.5 / len(v))
            ax.plot(i + jitter, v, "o", color=colour, alpha=0.55, markersize=3.5)
            middle = float(centre(v))
            low, high = percentiles(samples, ci)
            ax.errorbar([i + 0.25], [middle], yerr=[[middle - low], [high - middle]], fmt="_", color=colour,
                        markersize=14, capsize=3, linewidth=1.4)
        ax.set_xticks(range(len(values)), [_value_text(v) for v in values])
        ax.set_xlim(-0.6, len(values) - 0.4)
        ax.set_yscale("log" if logy else "linear")
        ax.set_xlabel(_pretty(group))
        ax.set_ylabel(_pretty(y))
        ax.text(0.01, 1.0, f"dots: runs; bar: {aggregate}, {ci:.0%} bootstrap interval", transform=ax.transAxes,
                ha="left", va="bottom", fontsize=6.5, color="0.4")
    return ax


def _sequential_colours(n: int) -> list:
    if n <= len(PALETTE) and n <= 3:
        return list(PALETTE[:n])
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.05, 0.85, max(n, 1))][:n]


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _pretty(column: str) -> str:
    """"best.train_loss" -> "best train loss", "model.m" -> "m"."""
    prefix, _, last = column.rpartition(".")
    if prefix in ("model", "data", "train"):
        return last
    return column.replace(".", " ").replace("_", " ")


def save_figure(fig: Figure, path_stem: str | Path) -> tuple[Path, Path]:
    """Write `fig` as PATH_STEM.png and PATH_STEM.pdf atomically; return (png, pdf) paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        def draw(tmp: Path, suffix: str = suffix) -> None:
            with matplotlib.rc_context(STYLE):
                fig.savefig(tmp, format=suffix[1:], dpi=DPI, metadata=_metadata(suffix))
        written.append(atomic_write(stem.with_name(stem.name + suffix), draw))
    return written[0], written[1]


def _metadata(suffix: str) -> dict[str, Any]:
    """No creation dates, so the same figure gives the same bytes."""
    return {"Software": None} if suffix == ".png" else {"CreationDate": None, "Creator": "attnlab"}
