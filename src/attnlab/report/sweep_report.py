"""`attnlab report SWEEP`: a report of any sweep, with measured scaling exponents.

SWEEP is a results table (the `<name>.parquet` that `attnlab sweep` writes: one row per run with
run_id, status, the config flattened to dotted columns such as model.m, data.T, seed, and the summary
flattened such as best.train_loss, average.val_loss) or a run store directory, whose whole runs (and
those of the stores one level below) are read through RunStore.table. The varied config columns are
the axes; for each numeric axis and each metric the report plots the metric across seeds and fits
a power law (one series and one fit per combination of the other axes), listing the measured
exponents without predictions.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from attnlab.config import RunConfig
from attnlab.report.figures import new_figure, plot_scaling, save_figure
from attnlab.report.fit import fit_power_law, symbol
from attnlab.report.html import write_report
from attnlab.report.result import ExperimentResult
from attnlab.report.verdict import measurement
from attnlab.run import open_store
from attnlab.store import CONFIG, DIVERGED, FAILED, PENDING, SUMMARY, atomic_write_text

DEFAULT_METRICS = ("best.train_loss", "average.train_loss", "average.val_loss", "last.val_loss")
NOT_METRICS = ("run_id", "status", "wall_time_s", "steps_run", "diverged_at", "best.step", "lr")
SEED = "seed"
UNFIT = (DIVERGED, FAILED, PENDING)   # statuses whose values are not fitted


class NoRunsError(ValueError):
    """The sweep directory holds no finished runs."""


def load_sweep_table(sweep: str | Path) -> pd.DataFrame:
    """The sweep's results table: the Parquet file `sweep`, or one row per whole run directory of the
    store `sweep` and of the stores one level below it. Raises NoRunsError if there is none."""
    sweep = Path(sweep)
    if sweep.is_file() and sweep.suffix == ".parquet":
        table = pd.read_parquet(sweep)
        missing = [c for c in ("run_id", "status") if c not in table.columns]
        if missing:
            raise NoRunsError(f"{sweep} is not a results table of attnlab: it lacks the columns "
                              f"{', '.join(missing)} (its columns: {', '.join(map(str, table.columns))})")
    elif sweep.is_dir():
        stores = [sweep, *sorted(p for p in sweep.iterdir()   # a run directory is no store below
                                 if p.is_dir() and not p.name.startswith(".") and not (p / CONFIG).exists())]
        parts = [open_store(root).table() for root in stores]
        table = pd.concat([t for t in parts if not t.empty] or [pd.DataFrame()], ignore_index=True)
        table = table.drop(columns=[c for c in table.columns if c.startswith("versions.")
                                    or (c == "error" and table[c].isna().all())])
    else:
        raise NoRunsError(f"{sweep} is neither a directory nor a results table (.parquet)")
    if table.empty:
        raise NoRunsError(f"{sweep} holds no runs: expected a results table (.parquet) or run directories "
                          f"with {CONFIG} and {SUMMARY} (written by `attnlab train --out {sweep}` or a sweep)")
    return table


def config_columns(table: pd.DataFrame) -> list[str]:
    """Columns that come from the run config (model.*, data.*, train.*, seed, device, dtype)."""
    sections = tuple(RunConfig.model_fields)
    return [c for c in table.columns if c in sections or c.split(".", 1)[0] in sections and "." in c]


def varied_axes(table: pd.DataFrame) -> list[str]:
    """Config columns (other than the seed) that take more than one value in the table."""
    return [c for c in config_columns(table) if c != SEED and table[c].astype(str).nunique() > 1]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric non-config columns that can be plotted (losses and other summary numbers)."""
    config = set(config_columns(table))
    return [c for c in table.columns if c not in config and c not in NOT_METRICS
            and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]


def _is_numeric_axis(table: pd.DataFrame, column: str) -> bool:
    values = pd.to_numeric(table[column], errors="coerce")
    return bool(values.notna().all()) and not pd.api.types.is_bool_dtype(table[column])


def report_sweep(sweep_dir: str | Path, out_dir: str | Path | None = None, x: Sequence[str] | None = None,
                 metrics: Sequence[str] | None = None, title: str | None = None, n_boot: int = 2000,
                 command: str | None = None) -> Path:
    """Write the report of the sweep in SWEEP_DIR to OUT_DIR (default SWEEP_DIR/report); return the
    HTML path. x: the axes to plot against (default: every numeric varied config column);
    metrics: the summary columns to plot (default: the standard losses present)."""
    sweep_dir = Path(sweep_dir)
    table = load_sweep_table(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else (sweep_dir if sweep_dir.is_dir() else sweep_dir.parent) / "report"
    axes = varied_axes(table)
    available = metric_columns(table)
    xs = list(x) if x else [a for a in axes if _is_numeric_axis(table, a)]
    for name in xs:
        if name not in table.columns:
            raise ValueError(f"--x {name}: not a column of the sweep table; config columns are "
                             f"{config_columns(table)}")
        if not _is_numeric_axis(table, name):
            raise ValueError(f"--x {name}: its values {sorted(table[name].astype(str).unique())} are not all numbers")
    ys = list(metrics) if metrics else [m for m in DEFAULT_METRICS if m in available] or available
    for name in ys:
        if name not in available:
            raise ValueError(f"--y {name}: not a numeric metric of the sweep table; metrics are {available}")
    if not ys:
        raise ValueError(f"the sweep table has no numeric metric columns; columns are {list(table.columns)}")

    command = command or " ".join(["attnlab", "report", shlex.quote(str(sweep_dir)), "--out",
                                   shlex.quote(str(out_dir))]
                                  + [f"--x {shlex.quote(a)}" for a in (x or [])]
                                  + [f"--y {shlex.quote(m)}" for m in (metrics or [])])
    unfit = table["status"].isin(UNFIT) if "status" in table.columns else pd.Series(False, index=table.index)
    shown = ["run_id", *(["status"] if unfit.any() else []), *axes, *([SEED] if SEED in table.columns else []), *ys]
    shown_table = table[[c for c in dict.fromkeys(shown) if c in table.columns]]
    sort_by = [c for c in [*axes, SEED] if c in shown_table.columns]
    if sort_by:
        shown_table = shown_table.sort_values(sort_by, key=_sort_key).reset_index(drop=True)
    config = _sweep_config(table, axes)
    notes = _status_note(table)
    if unfit.any():
        notes += (f" {int(unfit.sum())} runs that diverged or did not finish are shown in the table "
                  "and left out of the figures' fits.")
    fitted = table[~unfit]

    results, fit_rows = [], []
    for axis in xs:
        figures, verdicts = [], []
        others = [a for a in axes if a != axis]
        for metric in ys:
            fig, ax = new_figure()
            for label, group in _groups(fitted, others):
                fit = fit_power_law(group, axis, metric, seed=SEED, n_boot=n_boot)
                positive = bool((pd.to_numeric(group[metric], errors="coerce").dropna() > 0).all())
                plot_scaling(group, axis, metric, fit=fit if fit.ok else None, ax=ax,
                             label=label or None, logy=positive)
                claim = f"{metric} against {symbol(axis)}" + (f" ({label})" if label else "")
                verdicts.append(measurement(claim, fit))
                fit_rows.append({"x": axis, "y": metric, "group": label, **fit.to_dict()})
            ax.set_ylabel(metric)
            png, _ = save_figure(fig, out_dir / "figures" / f"{_slug(metric)}_vs_{_slug(axis)}")
            figures.append(png)
        results.append(ExperimentResult(
            key=symbol(axis), title=f"metrics against {axis}", paper=f"sweep {sweep_dir}",
            table=shown_table, figures=figures, verdicts=verdicts, config=config, command=command,
            notes=notes))
    if not xs:
        results.append(ExperimentResult(
            key="runs", title="all runs", paper=f"sweep {sweep_dir}", table=shown_table, figures=[],
            verdicts=[], config=config, command=command,
            notes=(notes + " " if notes else "") + "No numeric config column varies: nothing to plot."))
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.csv", table.to_csv(index=False))
    if fit_rows:
        atomic_write_text(out_dir / "fits.csv", pd.DataFrame(fit_rows).to_csv(index=False))
    return write_report(results, out_dir, title or f"Sweep report: {sweep_dir.stem}")


def _groups(table: pd.DataFrame, others: list[str]):
    """(label, rows) for each combination of the other axes' values ("" and all rows if none)."""
    if not others:
        yield "", table
        return
    for values, group in table.groupby([table[c].astype(str) for c in others], sort=True):
        values = values if isinstance(values, tuple) else (values,)
        yield ", ".join(f"{symbol(c)}={v}" for c, v in zip(others, values)), group


def _sweep_config(table: pd.DataFrame, axes: list[str]) -> dict[str, Any]:
    """The config columns shared by every run, and the values each varied axis takes."""
    fixed = {c: _scalar(table[c].iloc[0]) for c in config_columns(table) if c not in axes and c != SEED}
    varied = {c: sorted((_scalar(v) for v in table[c].dropna().unique()), key=str) for c in axes}
    seeds = sorted(int(s) for s in table[SEED].dropna().unique()) if SEED in table.columns else []
    return {"fixed": fixed, "varied": varied, "seeds": seeds}


def _sort_key(column: pd.Series) -> pd.Series:
    """Numbers by value, anything else by its text."""
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if numbers.notna().all() else column.astype(str)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _status_note(table: pd.DataFrame) -> str:
    if "status" not in table.columns:
        return ""
    counts = table["status"].astype(str).value_counts()
    return "Runs by status: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "."


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
