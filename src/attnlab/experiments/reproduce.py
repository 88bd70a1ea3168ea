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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from attnlab.config import ConfigError, RunConfig, config_to_dict, flatten, parse_config
from attnlab.experiments.claims import Runs
from attnlab.experiments.spec import Experiment, ExperimentFile, FigureRow, load_experiments, sweeps
from attnlab.report import ExperimentResult, scaling_experiment, stacked_figure, write_report
from attnlab.run import measure, open_store, run_many, train
from attnlab.store import DIVERGED, DONE, FAILED, PENDING, RunStore
from attnlab.sweep.grid import expand
from attnlab.sweep.runner import check_writable, run_sweep, write_table

PAPERS = {"arda2026": "arda2026.yaml", "wu2023": "wu2023.yaml"}
PROBE_SAMPLES, PROBE_DRAWS, PROBE_WIDTH = 24, 64, 4   # the sizes of the run that finds the recorded metrics


@dataclass
class Reproduction:
    """What one `reproduce` call produced: the judged experiments and where the report is."""

    paper: str
    preset: str
    results: list[ExperimentResult]
    report: Path
    runs: int = 0                                             # runs declared by the experiments
    failures: dict[str, int] = field(default_factory=dict)   # reason of a failed run -> how many
    pending: int = 0                                          # runs not in the store (stored_only)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


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


def experiment_keys(paper: str, declared: ExperimentFile, keys: list[str] | None) -> list[str]:
    """`keys` (all of the paper's experiments when None), each checked to be one of them (ConfigError)."""
    keys = keys or list(declared.experiments)
    unknown = [k for k in keys if k not in declared.experiments]
    if unknown:
        raise ConfigError(f"experiment = {unknown[0]!r}: {paper} has {', '.join(declared.experiments)}")
    return keys


def check_device(device: str) -> str:
    """`device` validated as RunConfig.device is (ConfigError naming it)."""
    return parse_config({"device": device}).device


def check_device_available(device: str, pending: int) -> None:
    """ConfigError when `device` is CUDA and this machine has none, though `pending` runs need it (a
    store holding every run reports without a GPU)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {device!r}: CUDA is not available on this machine, and {pending} runs are not "
                          "in the store yet; use --device cpu, or a machine with a GPU")


def experiment_configs(key: str, experiment: Experiment, preset: str,
                       device: str | None = None) -> dict[str, list[RunConfig]]:
    """The validated run configs of every series of one experiment (on `device` when given)."""
    configs = {name: expand(spec) for name, spec in sweeps(key, experiment, preset).items()}
    if device is not None:
        device = check_device(device)
        configs = {name: [c.model_copy(update={"device": device}) for c in cs] for name, cs in configs.items()}
    return configs


def reproduce(paper: str, experiments: list[str] | None = None, preset: str = "quick",
              out: str | Path = "results", executor: str = "local", workers: int | None = 1,
              device: str | None = None, progress: bool = True, threads: int | None = None,
              stored_only: bool = False) -> Reproduction:
    """Run, judge and report the experiments of `paper` (all of them unless `experiments` names
    some). Runs live in OUT/runs (shared by every paper and preset); tables, figures and the
    report go to OUT/PAPER/PRESET/. threads: torch threads per local worker (None: the default).
    stored_only: train nothing; judge the runs the store holds, the others reported as pending
    (the report's title says it is partial)."""
    declared = experiment_file(paper)
    keys = experiment_keys(paper, declared, experiments)
    out = Path(out)
    name = Path(paper).stem if paper.endswith((".yaml", ".yml")) else paper
    store, folder = open_store(out / "runs"), out / name / preset
    all_configs = {key: experiment_configs(key, declared.experiments[key], preset, device) for key in keys}
    pending = sum(not store.is_complete(c) for cs in all_configs.values() for series in cs.values() for c in series)
    if pending and not stored_only:
        if executor == "local" and device is not None:
            check_device_available(device, pending)
        check_writable(Path(store.root).resolve())   # before the probes below compute anything
    for key in keys:   # refuse a claim the runs cannot answer before any run is trained
        check_claims_against_runs(key, declared.experiments[key], all_configs[key], store)
    results, failures, total = [], {}, 0
    for key in keys:
        experiment, configs = declared.experiments[key], all_configs[key]
        if not stored_only:
            run_sweep(smallest_x_first(configs, experiment.x), store, run_many, executor=executor,
                      workers=workers, progress=progress, threads=threads)
        table = tidy_table(experiment, configs, store)
        total += len(table)
        for reason in table.loc[table["status"] == FAILED, "error"].fillna("no reason recorded"):
            failures[reason] = failures.get(reason, 0) + 1
        write_table(table, folder / key / "results")
        results.append(judge_experiment(key, experiment, table, folder / "figures", name, preset,
                                        declared.paper, configs, store))
    pending = sum(int((r.table["status"] == PENDING).sum()) for r in results)
    partial = f" (partial: {pending} of {total} runs not in the store)" if pending else ""
    report = write_report(results, folder, title=f"{declared.title}: {preset} preset{partial}", name="report")
    return Reproduction(name, preset, results, report, total, failures, pending)


def smallest_x_first(configs: dict[str, list[RunConfig]], x: str) -> list[RunConfig]:
    """Every series' configs in one list, by x (every series at one x before the next): the cheap
    runs first, so that a preset stopped midway leaves whole x values for `stored_only` to judge."""
    flat = [c for cs in configs.values() for c in cs]
    return sorted(flat, key=lambda c: float(flatten(config_to_dict(c))[x]))


def check_claims_against_runs(key: str, experiment: Experiment, configs: dict[str, list[RunConfig]],
                              store: RunStore) -> None:
    """Raise ConfigError (naming the field) unless every claim can be judged from these runs: x is a
    config field, swept where a fit or ratio needs it; each metric is recorded by the runs (their
    summary for claims on runs, their curves for claims on curves)."""
    flat = [c for cs in configs.values() for c in cs]
    fields = flatten(config_to_dict(flat[0]))
    fields.pop("seed")   # the bootstrap resamples seeds: x is another field
    if experiment.x not in fields:
        raise ConfigError(f"{key}.x = {experiment.x!r}: not a config field other than seed; fields are "
                          f"{', '.join(fields)}")
    values = [flatten(config_to_dict(c)).get(experiment.x) for c in flat]
    words = sorted({repr(v) for v in values if isinstance(v, bool) or not isinstance(v, (int, float))})
    if words:
        raise ConfigError(f"{key}.x = {experiment.x!r}: takes {', '.join(words)} in these runs; x must be a "
                          "numeric field (claims are fitted against it)")
    x_values = {repr(v) for v in values}
    summary_metrics, curve_metrics = recorded_metrics(flat, store)
    for i, claim in enumerate(experiment.claims):
        if claim.needs_sweep and len(x_values) < 2:
            raise ConfigError(f"{key}.claims.{i}: x = {experiment.x!r} takes one value "
                              f"({next(iter(x_values))}) in these runs; the claim needs it swept "
                              "(add it to the preset's axes)")
        known = curve_metrics if claim.on_curves else summary_metrics
        if known is not None and claim.metric not in known:
            where = "curve column" if claim.on_curves else "metric"
            raise ConfigError(f"{key}.claims.{i}.metric = {claim.metric!r}: not a numeric {where} these runs "
                              f"record; they record {', '.join(sorted(known))}")
    for i, figure in enumerate(experiment.figures):
        for j, row in enumerate(figure.rows):
            missing = [c for c in figure_columns(row) if summary_metrics is not None and c not in summary_metrics]
            if missing:
                raise ConfigError(f"{key}.figures.{i}.rows.{j}.metric = {row.metric!r}: these runs do not "
                                  f"record {', '.join(missing)}; they record {', '.join(sorted(summary_metrics))}")


def figure_columns(row: FigureRow) -> list[str]:
    """The results-table columns a figure row draws: its metric, or the block statistics of a pooled one."""
    return [f"{row.metric}.{part}" for part in ("mean", "sd", "count")] if row.pooled else [row.metric]


def recorded_metrics(configs: list[RunConfig], store: RunStore) -> tuple[set[str] | None, set[str] | None]:
    """(numeric results-table metrics, curve columns) that runs of `configs` record: read from a
    finished run in the store, else found by a two-step run of the first config's model and task on
    a few samples (None when that probe cannot run, e.g. a missing data file: the runs then fail and
    are reported as failed)."""
    finished = next((c for c in configs if store.path(c).exists() and store.is_complete(c)), None)
    if finished is not None:
        return _numeric(store.summary(finished)), set(store.curves(finished).columns)
    config = configs[0]
    if config.task != "train":
        probe = _probe_config(config, steps=1)
        try:
            summary = measure(probe)
        except Exception:   # noqa: BLE001 - the real runs will record why
            return None, None
        return _numeric(summary), set()
    try:
        result = train(_probe_config(config, steps=2))
    except Exception:   # noqa: BLE001
        return None, None
    return _numeric(result.summary), set(result.curves.columns)


def _numeric(summary: dict[str, Any]) -> set[str]:
    """The flattened keys of a summary whose values are numbers (or None: a number not measured)."""
    return {k for k, v in flatten(summary).items() if v is None or (isinstance(v, (int, float))
                                                                    and not isinstance(v, bool))}


def _probe_config(config: RunConfig, steps: int) -> RunConfig:
    """`config` on few samples (teacher: few draws), width at most 4, few steps and the CPU,
    recording every step (diagnostics included)."""
    probe = config.model_copy(update={
        "data": config.data.with_samples(PROBE_SAMPLES).with_draws(PROBE_DRAWS),
        "model": config.model.with_width(min(config.model.width, PROBE_WIDTH)),
        "train": config.train.model_copy(update={"steps": steps, "record_every": 1, "batch_size": 1}),
        "diagnostics": config.diagnostics.every_step(ntk_samples=8), "device": "cpu"})
    return parse_config(config_to_dict(probe))


def tidy_table(experiment: Experiment, configs: dict[str, list[RunConfig]], store: RunStore) -> pd.DataFrame:
    """One row per run: run id, status, series, x, seed, every claimed metric, wall time, error."""
    parts = [store.table(cs).assign(series=name) for name, cs in configs.items()]
    table = pd.concat(parts, ignore_index=True)
    metrics = list(dict.fromkeys(
        [column for claim in experiment.claims for column in claim.columns()]
        + [column for panel in experiment.panels for column in panel.metrics.values()]
        + [column for figure in experiment.figures for row in figure.rows for column in figure_columns(row)]))
    for column in (experiment.x, *metrics):
        if column not in table.columns:
            table[column] = float("nan")   # no run finished, or a metric the runs do not report
    columns = ["run_id", "status", "series", experiment.x, "seed", *metrics, "wall_time_s", "error"]
    return table[[c for c in columns if c in table.columns]]


def curves_table(table: pd.DataFrame, metric: str, group: str, *, configs: dict[str, list[RunConfig]],
                 curves_of: Callable[[RunConfig], pd.DataFrame], x: str,
                 run_id: Callable[[RunConfig], str]) -> pd.DataFrame:
    """Long table of one curve column of every finished run of `table`: step (> 0), metric, seed,
    run_id (the fit then resamples whole runs) and `group` naming the curve (the value of x;
    "series, x=value" when there are several series)."""
    parts = []
    by_id = {run_id(c): c for cs in configs.values() for c in cs}
    for _, row in table.iterrows():
        if row["status"] != DONE:
            continue
        config = by_id[row["run_id"]]
        curves = curves_of(config)
        if metric not in curves:
            continue
        label = row[x] if group == x else f"{row['series']}, {x.rpartition('.')[2]}={row[x]}"
        part = curves.loc[curves["step"] > 0, ["step", metric]].assign(seed=config.seed, run_id=row["run_id"],
                                                                        **{group: label})
        parts.append(part)
    if not parts:
        return pd.DataFrame({"step": [], metric: [], "seed": [], "run_id": [], group: []})
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
                     preset: str, source: str, configs: dict[str, list[RunConfig]],
                     store: RunStore) -> ExperimentResult:
    """Judge every claim of one experiment and draw its figures; one ExperimentResult with all
    verdicts and figures. table: one row per run (failed and diverged runs are not judged)."""
    hue = "series" if len(configs) > 1 else None
    done = table[table["status"] == DONE]
    curves = functools.partial(curves_table, configs=configs, x=experiment.x, run_id=lambda c: store.run_id(c),
                               curves_of=functools.lru_cache(maxsize=None)(store.curves))   # each run read once
    parts, unjudged = [], []
    for claim in experiment.claims:
        runs = done if claim.series is None else done[done["series"].isin(claim.series)]
        part = None if runs.empty else claim.judge(Runs(key, runs, experiment.x, hue, figure_dir, curves))
        if part is None:   # every run it needs failed: said in the notes, judged on a rerun
            unjudged.append(claim.quantity)
        else:
            parts.append(part)
    for panel in experiment.panels if not done.empty else []:
        long = panel_table(done, panel.metrics, experiment.x, hue).rename(columns={"value": panel.quantity})
        figure = scaling_experiment(key, panel.quantity, long, experiment.x, panel.quantity,
                                    figure_dir=figure_dir, kind=panel.fit, hue="curve")
        parts.append(ExperimentResult(key=key, title=panel.quantity, table=pd.DataFrame(),
                                      figures=figure.figures, notes=figure.notes))
    for figure in experiment.figures:
        parts.append(stacked_figure(key, figure.name, figure.title, done, experiment.x,
                                    [(row.quantity, row.metric, row.pooled, row.log_y) for row in figure.rows],
                                    figure_dir=figure_dir, hue=hue, labels=figure.labels, logx=figure.log_x))
    notes = [n for n in [experiment.notes, *_run_notes(table, unjudged, experiment.x), *(p.notes for p in parts)]
             if n]
    first = next(iter(configs.values()))[0]
    return ExperimentResult(
        key=key, title=experiment.title, table=table.drop(columns=["run_id"]),
        verdicts=[v for part in parts for v in part.verdicts], figures=[f for part in parts for f in part.figures],
        config=_config_summary(first, experiment.x), claim=experiment.claim, paper=source,
        command=f"attnlab reproduce {paper} --experiment {key} --preset {preset}", notes="\n\n".join(notes))


def _run_notes(table: pd.DataFrame, unjudged: list[str], x: str) -> list[str]:
    """What the notes say of runs that failed, diverged or are missing, and of claims not judged."""
    notes = []
    failed = table[table["status"] == FAILED]
    if len(failed):
        reasons = failed["error"].fillna("no reason recorded").value_counts()
        notes.append(f"{len(failed)} of {len(table)} runs failed (status failed in the table; fits use the "
                     "others): " + "; ".join(f"{n} x {reason}" for reason, n in reasons.items()) + ".")
    diverged = int((table["status"] == DIVERGED).sum())
    if diverged:
        notes.append(f"{diverged} of {len(table)} runs diverged (status diverged in the table): "
                     "they are left out of the fits.")
    pending = int((table["status"] == PENDING).sum())
    if pending:
        values = ", ".join(str(v) for v in sorted(table.loc[table["status"] == PENDING, x].unique()))
        notes.append(f"{pending} of {len(table)} runs are not in the store (status pending; "
                     f"{x.rpartition('.')[2]} = {values}): the verdicts use the others.")
    if unjudged:
        notes.append("Not judged, no run it needs finished: " + "; ".join(dict.fromkeys(unjudged)) + ".")
    return notes


def _config_summary(config: RunConfig, x: str) -> dict[str, Any]:
    """The base config of an experiment (its first run, with the swept field and seed marked)."""
    summary = config.model_dump(mode="json")
    summary["seed"] = "swept"
    section, _, field = x.partition(".")
    if field and isinstance(summary.get(section), dict):
        summary[section][field] = "swept"
    return summary
