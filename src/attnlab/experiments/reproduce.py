"""`attnlab reproduce PAPER`: run a paper's declared experiments through the run store, then fit,
judge, plot and report them.

For every experiment of the paper's experiment file (spec.py) and the chosen preset:
the sweep of each series is run (runs the store already holds are reused, failed runs are logged
and skipped), the tidy results table (one row per run) is written as Parquet and CSV, each claim is
fitted with a bootstrap-over-seeds interval and judged, and the figures and the HTML/Markdown
report are written under OUT/PAPER/PRESET/.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from attnlab.config import ConfigError, RunConfig
from attnlab.experiments.spec import Experiment, ExperimentFile, load_experiments, sweeps
from attnlab.report import (ExperimentResult, bound_experiment, every_experiment, ordering_experiment,
                            scaling_experiment, write_report)
from attnlab.sweep.grid import expand
from attnlab.sweep.runner import results_table, run_sweep, write_table
from attnlab.sweep.store import RunStore

PAPERS = {"arda2026": "arda2026.yaml", "wu2023": "wu2023.yaml"}


@dataclass
class Reproduction:
    """What one `reproduce` call produced: the judged experiments and where the report is."""

    paper: str
    preset: str
    results: list[ExperimentResult]
    report: Path


def experiment_file(paper: str) -> ExperimentFile:
    """The declared experiments of `paper`: a key of PAPERS, or the path of an experiment file."""
    if paper.endswith((".yaml", ".yml")):
        if not Path(paper).is_file():
            raise ConfigError(f"paper = {paper!r}: no such experiment file")
        return load_experiments(paper)
    if paper not in PAPERS:
        raise ConfigError(f"paper = {paper!r}: allowed: {', '.join(PAPERS)}, all, or an experiment file (.yaml)")
    with resources.as_file(resources.files("attnlab.experiments") / PAPERS[paper]) as path:
        return load_experiments(path)


def experiment_configs(key: str, experiment: Experiment, preset: str,
                       device: str | None = None) -> dict[str, list[RunConfig]]:
    """The validated run configs of every series of one experiment."""
    configs = {name: expand(spec) for name, spec in sweeps(key, experiment, preset).items()}
    if device is not None:
        configs = {name: [c.model_copy(update={"device": device}) for c in cs] for name, cs in configs.items()}
    return configs


def reproduce(paper: str, experiments: list[str] | None = None, preset: str = "quick",
              out: str | Path = "results", executor: str = "local", workers: int | None = 1,
              device: str | None = None, progress: bool = True, threads: int | None = None) -> Reproduction:
    """Run, judge and report the experiments of `paper` (all of them unless `experiments` names
    some). Runs live in OUT/runs (shared by every paper and preset); tables, figures and the
    report go to OUT/PAPER/PRESET/. threads: torch threads per local worker (None: the default)."""
    declared = experiment_file(paper)
    keys = experiments or list(declared.experiments)
    unknown = [k for k in keys if k not in declared.experiments]
    if unknown:
        raise ConfigError(f"experiment = {unknown[0]!r}: {paper} has {', '.join(declared.experiments)}")
    out = Path(out)
    name = Path(paper).stem if paper.endswith((".yaml", ".yml")) else paper
    runs, folder = out / "runs", out / name / preset
    all_configs = {key: experiment_configs(key, declared.experiments[key], preset, device) for key in keys}
    results = []
    for key in keys:
        experiment, configs = declared.experiments[key], all_configs[key]
        run_sweep([c for cs in configs.values() for c in cs], runs, executor=executor, workers=workers,
                  progress=progress, **({"threads": threads} if threads and executor != "slurm" else {}))
        table = tidy_table(experiment, configs, runs)
        write_table(table, folder / key / "results")
        results.append(judge_experiment(key, experiment, table, folder / "figures", name, preset,
                                        declared.paper, configs, runs))
    report = write_report(results, folder, title=f"{declared.title}: {preset} preset", name="report")
    return Reproduction(name, preset, results, report)


def tidy_table(experiment: Experiment, configs: dict[str, list[RunConfig]], runs: Path) -> pd.DataFrame:
    """One row per run: run id, status, series, x, seed, every claimed metric, wall time, error."""
    parts = [results_table(cs, runs).assign(series=name) for name, cs in configs.items()]
    table = pd.concat(parts, ignore_index=True)
    metrics = list(dict.fromkeys(
        [column for claim in experiment.claims if claim.source == "runs"
         for column in (claim.metric, claim.bound_metric) if column]
        + [column for panel in experiment.panels for column in panel.metrics.values()]))
    for column in (experiment.x, *metrics):
        if column not in table.columns:
            table[column] = float("nan")   # no run finished, or a metric the runs do not report
    columns = ["run_id", "status", "series", experiment.x, "seed", *metrics, "wall_time_s", "error"]
    return table[[c for c in columns if c in table.columns]]


def curves_table(configs: dict[str, list[RunConfig]], table: pd.DataFrame,
                 curves_of: Callable[[RunConfig], pd.DataFrame], metric: str, x: str, group: str) -> pd.DataFrame:
    """Long table of one curve column of every finished run: step (> 0), metric, seed, and `group`
    naming the curve (the value of x; "series, x=value" when there are several series)."""
    parts = []
    flat = [c for cs in configs.values() for c in cs]
    for config, (_, row) in zip(flat, table.iterrows()):
        if row["status"] != "done":
            continue
        curves = curves_of(config)
        if metric not in curves:
            continue
        label = row[x] if group == x else f"{row['series']}, {x.rpartition('.')[2]}={row[x]}"
        part = curves.loc[curves["step"] > 0, ["step", metric]].assign(seed=config.seed, **{group: label})
        parts.append(part)
    if not parts:
        return pd.DataFrame({"step": [], metric: [], "seed": [], group: []})
    return pd.concat(parts, ignore_index=True)


def panel_table(table: pd.DataFrame, metrics: dict[str, str], x: str, hue: str | None) -> pd.DataFrame:
    """Long table of several metric columns: x, seed, value, and `curve` naming the metric (its label,
    prefixed by the series when there are several)."""
    parts = []
    for label, column in metrics.items():
        part = table[[x, "seed", *([hue] if hue else [])]].copy()
        part["value"] = pd.to_numeric(table[column], errors="coerce") if column in table else float("nan")
        part["curve"] = label if hue is None else table[hue].astype(str) + ": " + label
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def judge_experiment(key: str, experiment: Experiment, table: pd.DataFrame, figure_dir: Path, paper: str,
                     preset: str, source: str, configs: dict[str, list[RunConfig]], runs: Path) -> ExperimentResult:
    """Fit and judge every claim of one experiment; one ExperimentResult with all verdicts and figures."""
    hue = "series" if len(configs) > 1 else None
    curves_of = functools.lru_cache(maxsize=None)(RunStore(runs).curves)   # read once for all curve claims
    parts = []
    full_table = table
    for claim in experiment.claims:
        table = full_table if claim.series is None else full_table[full_table["series"].isin(claim.series)]
        if claim.kind == "order":
            parts.append(ordering_experiment(key, claim.quantity, table, "series", claim.metric, claim.order,
                                             figure_dir=figure_dir, x=experiment.x, at=claim.at))
            continue
        if claim.kind == "every":
            parts.append(every_experiment(key, claim.quantity, table, claim.metric, claim.every_at_most, hue=hue))
            continue
        if claim.kind == "bound":
            parts.append(bound_experiment(key, claim.quantity, table, experiment.x, claim.metric, at=claim.at,
                                          between=claim.between, at_least=claim.at_least,
                                          at_most=claim.at_most, hue=hue))
            continue
        data, x, group = table, experiment.x, hue
        if claim.source == "curves":
            group = hue or experiment.x
            data, x = curves_table(configs, full_table, curves_of, claim.metric, experiment.x, group), "step"
        level = (claim.level.value, claim.level.label) if claim.level else None
        parts.append(scaling_experiment(key, claim.quantity, data, x, claim.metric, figure_dir=figure_dir,
                                        kind=claim.fit, predicted=claim.predicted, direction=claim.direction,
                                        prediction=claim.prediction, hue=group, level=level,
                                        tolerance=claim.tolerance, does_not=claim.does_not,
                                        bound_column=claim.bound_metric,
                                        figure_suffix="_".join(claim.series or [])))
    table = full_table
    for panel in experiment.panels:
        long = panel_table(table, panel.metrics, experiment.x, hue).rename(columns={"value": panel.quantity})
        figure = scaling_experiment(key, panel.quantity, long, experiment.x, panel.quantity,
                                    figure_dir=figure_dir, kind=panel.fit, hue="curve")
        parts.append(ExperimentResult(key=key, title=panel.quantity, table=pd.DataFrame(), verdicts=[],
                                      figures=figure.figures, config={}, notes=figure.notes))
    failed = int((table["status"] != "done").sum())
    notes = [experiment.notes] if experiment.notes else []
    if failed:
        notes.append(f"{failed} of {len(table)} runs did not finish (see the error column); fits use the others.")
    notes += [part.notes for part in parts if part.notes]
    first = next(iter(configs.values()))[0]
    return ExperimentResult(
        key=key, title=experiment.title, table=table.drop(columns=["run_id"]),
        verdicts=[v for part in parts for v in part.verdicts], figures=[f for part in parts for f in part.figures],
        config=_config_summary(first, experiment.x), claim=experiment.claim, paper=source,
        command=f"attnlab reproduce {paper} --experiment {key} --preset {preset}", notes="\n\n".join(notes))


def _config_summary(config: RunConfig, x: str) -> dict[str, Any]:
    """The base config of an experiment (its first run, with the swept field and seed marked)."""
    summary = config.model_dump(mode="json")
    summary["seed"] = "swept"
    section, _, field = x.partition(".")
    if field and isinstance(summary.get(section), dict):
        summary[section][field] = "swept"
    return summary
