"""The `attnlab` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from attnlab.config import ConfigError, apply_overrides, load_config, parse_config, yaml_error_line

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="attnlab: training dynamics of shallow attention networks.")



@app.callback()
def _group() -> None:
    """attnlab: training dynamics of shallow attention networks."""


# CLI flag -> dotted config field(s) it sets.
FLAG_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model.name",), "m": ("model.m",), "activation": ("model.activation",),
    "data": ("data.name",), "n": ("data.n",), "T": ("data.T",), "d": ("data.d",), "K": ("data.K",),
    "method": ("train.method",), "steps": ("train.steps",), "lr": ("train.lr",),
    "batch_size": ("train.batch_size",), "radius": ("train.radius",),
    "record_every": ("train.record_every",), "seed": ("seed",), "device": ("device",), "dtype": ("dtype",),
    "gain": ("model.gain",), "L": ("data.L",),
}


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit with `code` (2: invalid input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs (VALUE read as YAML) into dotted overrides."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.m=64")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            fail(f"--set {item!r}: the value is not valid YAML ({yaml_error_line(error)})")
    return overrides


def resolve_config(config_file: Optional[Path], flags: dict[str, Any], sets: list[str]):
    """Config file (or defaults) + flags + --set overrides, validated; exits 2 on any error."""
    overrides: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is not None:
            for field in FLAG_FIELDS[flag]:
                overrides[field] = value
    if isinstance(flags.get("data"), str) and ":" in flags["data"]:  # --data series:co2
        overrides["data.name"], overrides["data.recording"] = flags["data"].split(":", 1)
    if flags.get("activation") is not None and flags.get("data") in (None, "teacher"):
        overrides["data.activation"] = flags["activation"]  # the teacher uses the student's activation
    overrides.update(parse_set_options(sets))
    try:
        if config_file is not None:
            return load_config(config_file, overrides)
        return parse_config(apply_overrides({}, overrides))
    except ConfigError as error:
        fail(f"invalid config: {error}")


def _radius(value: Optional[str]) -> Any:
    if value is None or value == "none":
        return value
    try:
        return float(value)
    except ValueError:
        fail(f"--radius {value!r}: expected a number >= 0 or 'none'")


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    model: Optional[str] = typer.Option(None, help="Model family: kernel-transformer or indrnn."),
    m: Optional[int] = typer.Option(None, "--m", help="Width: number of heads."),
    activation: Optional[str] = typer.Option(None, help="tanh or erf."),
    data: Optional[str] = typer.Option(None, help="Data: teacher, ar-lag or series:NAME (co2, sunspots)."),
    L: Optional[int] = typer.Option(None, "--L", help="Lag of the ar-lag / series data (T = L + 1)."),
    gain: Optional[float] = typer.Option(None, help="Recurrent gain g of the indrnn initialisation."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of samples (train + validation)."),
    T: Optional[int] = typer.Option(None, "--T", help="Sequence length."),
    d: Optional[int] = typer.Option(None, "--d", help="Token dimension."),
    K: Optional[int] = typer.Option(None, "--K", help="Monte-Carlo draws of the teacher."),
    method: Optional[str] = typer.Option(None, help="gd, projgd or projsgd."),
    steps: Optional[int] = typer.Option(None, help="Number of steps."),
    lr: Optional[float] = typer.Option(None, help="Step size (default 1.75/sqrt(steps))."),
    batch_size: Optional[int] = typer.Option(None, help="Mini-batch size of projsgd."),
    radius: Optional[str] = typer.Option(None, help="Projection radius rho of every block, or 'none'."),
    record_every: Optional[int] = typer.Option(None, help="Steps between recorded curve points."),
    seed: Optional[int] = typer.Option(None, help="Run seed (data, initialisation, batches)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda."),
    dtype: Optional[str] = typer.Option(None, help="float32 or float64."),
    set_: list[str] = typer.Option([], "--set", help="Any config field: --set train.radius.w=none."),
    out: Path = typer.Option(Path("runs"), help="Run store directory."),
    force: bool = typer.Option(False, help="Train again even if the store holds this run."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Train one model and write its run directory (config, curves, summary)."""
    flags = dict(model=model, m=m, activation=activation, data=data, L=L, gain=gain, n=n, T=T, d=d, K=K,
                 method=method,
                 steps=steps, lr=lr, batch_size=batch_size, radius=_radius(radius),
                 record_every=record_every, seed=seed, device=device, dtype=dtype)
    cfg = resolve_config(config, flags, set_)
    from attnlab.progress import training_progress
    from attnlab.run import open_store, run
    from attnlab.sweep.runner import StoreNotWritable, check_writable

    if force or not open_store(out).is_complete(cfg):
        try:
            check_writable(out)
        except StoreNotWritable as error:
            fail(str(error).replace("choose a writable directory", "choose another --out"))
    try:
        with training_progress(cfg.train.steps, enabled=not quiet) as progress:
            path = run(cfg, root=out, force=force, progress=progress)
    except ValueError as error:   # bad data file (IdxError), a config the data cannot serve, ...
        fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    except FileNotFoundError as error:
        fail(f"{error.filename or ''}: {error.strerror or error}".lstrip(": "))
    except (RuntimeError, OSError) as error:
        fail(str(error).splitlines()[0], code=1)
    from attnlab.store import read_summary

    typer.echo(format_summary(read_summary(path)))
    typer.echo(f"run directory: {path}")


@app.command()
def ntk(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    n: int = typer.Option(512, "--n", help="Number of training inputs the kernel is computed on."),
    method: str = typer.Option("auto", help="auto, structured, jacobian or vjp-jvp."),
    out: Path = typer.Option(Path("ntk"), help="Output directory (spectrum.npy, ntk_summary.json)."),
    max_memory_gb: Optional[float] = typer.Option(None, help="Memory bound of the generic paths (GB)."),
    lanczos: Optional[int] = typer.Option(None, help="Matrix-free: the k smallest eigenvalues by Lanczos."),
    model: Optional[str] = typer.Option(None, help="Model family, e.g. kernel-transformer."),
    m: Optional[int] = typer.Option(None, "--m", help="Width: number of heads."),
    activation: Optional[str] = typer.Option(None, help="tanh or erf."),
    data: Optional[str] = typer.Option(None, help="Data generator, e.g. teacher."),
    n_data: Optional[int] = typer.Option(None, "--n-data", help="Number of samples generated (data.n)."),
    T: Optional[int] = typer.Option(None, "--T", help="Sequence length."),
    d: Optional[int] = typer.Option(None, "--d", help="Token dimension."),
    K: Optional[int] = typer.Option(None, "--K", help="Monte-Carlo draws of the teacher."),
    seed: Optional[int] = typer.Option(None, help="Run seed (data, initialisation)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda."),
    set_: list[str] = typer.Option([], "--set", help="Any config field: --set model.m=128."),
) -> None:
    """NTK at initialisation on the first n training inputs: smallest eigenvalue, condition number,
    trace and timing; the spectrum (ascending, float64) is saved to OUT/spectrum.npy."""
    from attnlab.ntk.empirical import METHODS

    if n <= 0:
        fail(f"--n {n}: the number of inputs must be a positive integer")
    if method not in METHODS:
        fail(f"--method {method!r}: allowed are {', '.join(METHODS)}")
    if max_memory_gb is not None and max_memory_gb <= 0:
        fail(f"--max-memory-gb {max_memory_gb}: must be positive")
    flags = dict(model=model, m=m, activation=activation, data=data, n=n_data, T=T, d=d, K=K, seed=seed,
                 device=device)
    cfg = resolve_config(config, flags, set_)
    from attnlab.ntk.cli import compute_ntk_report

    try:
        report = compute_ntk_report(cfg, n, method, out, max_memory_gb, lanczos)
    except ValueError as error:
        fail(str(error))
    except RuntimeError as error:
        fail(str(error), code=1)
    typer.echo(report)


def format_summary(summary: dict[str, Any]) -> str:
    """A short table of the last, best and averaged iterates' losses (a measurement task: its values)."""
    if "last" not in summary:
        values = [f"{key} = {value:.6g}" for key, value in summary.items()
                  if isinstance(value, (int, float)) and key != "wall_time_s"]
        return "\n".join([f"task {summary.get('task')}", *values, f"wall time {summary['wall_time_s']:.2f} s"])
    lines = [f"{'iterate':<9}{'train loss':>14}{'val loss':>14}"]
    for name in ("last", "best", "average"):
        it = summary[name]
        lines.append(f"{name:<9}{it['train_loss']:>14.6g}{it['val_loss']:>14.6g}")
    if summary.get("diverged_at") is not None:
        lines.append(f"diverged at step {summary['diverged_at']}")
    lines.append(f"wall time {summary['wall_time_s']:.2f} s")
    return "\n".join(lines)


@app.command()
def report(
    sweep_dir: Path = typer.Argument(..., help="Sweep directory: results.parquet or run directories."),
    out: Optional[Path] = typer.Option(None, help="Report directory (default SWEEP_DIR/report)."),
    x: list[str] = typer.Option([], "--x", help="Axis to plot against, e.g. model.m (repeatable; "
                                "default: every numeric config field that varies)."),
    y: list[str] = typer.Option([], "--y", help="Metric to plot, e.g. best.train_loss (repeatable)."),
    title: Optional[str] = typer.Option(None, help="Report title."),
    n_boot: int = typer.Option(2000, help="Bootstrap resamples for the exponents' intervals."),
) -> None:
    """Write an HTML + Markdown report of a sweep: figures, fitted exponents, tables."""
    from attnlab.report.sweep_report import NoRunsError, report_sweep

    try:
        path = report_sweep(sweep_dir, out_dir=out, x=x or None, metrics=y or None, title=title,
                            n_boot=n_boot)
    except NoRunsError as error:
        fail(str(error))
    except ValueError as error:
        fail(str(error))
    typer.echo(f"report: {path}")
    typer.echo(f"summary: {path.with_suffix('.md')}")


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="Sweep file (YAML): name, base, axes, zip_axes, seeds."),
    executor: str = typer.Option("local", help="local, dask or slurm."),
    workers: Optional[int] = typer.Option(None, help="local: processes (default: one per core; 1 runs "
                                          "in this process). slurm: array parallelism."),
    threads: Optional[int] = typer.Option(None, help="local: torch threads per worker (default cores/workers)."),
    scheduler: Optional[str] = typer.Option(None, help="dask: scheduler address, tcp://HOST:PORT."),
    partition: Optional[str] = typer.Option(None, help="slurm: partition."),
    time: int = typer.Option(60, "--time", help="slurm: time limit per job in minutes."),
    mem: float = typer.Option(4.0, "--mem", help="slurm: memory per job in GB."),
    array_parallelism: Optional[int] = typer.Option(None, help="slurm: jobs of an array running at once."),
    cluster: Optional[str] = typer.Option(None, help="slurm: submitit cluster (default: detect; "
                                          "'local' or 'debug' run without SLURM)."),
    retries: int = typer.Option(2, help="Times a task whose worker died is resubmitted."),
    root: Path = typer.Option(Path("runs"), help="Run store directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and what is reused."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the runs that failed before."),
    out: Optional[Path] = typer.Option(None, help="Results table (Parquet; a CSV is written beside it). "
                                       "Default ROOT/<sweep name>.parquet."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Run a grid of trainings (what the store lacks) and write the results table."""
    from attnlab.sweep.grid import expand, load_sweep
    from attnlab.run import open_store, run_many
    from attnlab.sweep.runner import StoreNotWritable, plan, run_sweep, write_table

    try:
        spec = load_sweep(file)
        configs = expand(spec)
    except ConfigError as error:
        fail(f"invalid sweep file {str(file)!r}: {error}")
    if executor not in ("local", "dask", "slurm"):
        fail(f"--executor {executor!r}: expected local, dask or slurm")
    if dry_run:
        typer.echo(format_plan(plan(configs, open_store(root), retry_failed), configs))
        return
    options: dict[str, Any] = {"retries": retries}
    if executor == "local":
        options["threads"] = threads
    elif executor == "dask":
        if scheduler is None:
            fail("--executor dask needs --scheduler tcp://HOST:PORT")
        options["scheduler"] = scheduler
    else:
        options.update(cluster=cluster, partition=partition, time_min=time, mem_gb=mem)
        if array_parallelism is not None:
            options["array_parallelism"] = array_parallelism
    try:
        table = run_sweep(configs, open_store(root), run_many, executor=executor, workers=workers, retry_failed=retry_failed,
                          progress=not quiet, **options)
    except StoreNotWritable as error:
        fail(str(error))
    except (ValueError, OSError) as error:
        fail(str(error), code=1)
    try:
        parquet, csv = write_table(table, out or root / f"{spec.name}.parquet")
    except OSError as error:
        fail(f"cannot write the results table {str(out or root / f'{spec.name}.parquet')!r}: "
             f"{error.strerror or error}; choose another --out", code=1)
    counts = table["status"].value_counts().to_dict()
    diverged = f", {counts['diverged']} diverged" if counts.get("diverged") else ""
    typer.echo(f"{len(table)} runs: {counts.get('done', 0)} done{diverged}, {counts.get('failed', 0)} failed")
    if counts.get("diverged"):
        typer.echo("diverged (the loss left the finite numbers): "
                   + ", ".join(table.loc[table["status"] == "diverged", "run_id"]))
    typer.echo(f"results table: {parquet} and {csv}")
    if counts.get("failed", 0):
        fail(f"{counts['failed']} runs failed (records in {root / '.failed'}); "
             "rerun with --retry-failed to try them again", code=1)


def format_plan(p: Any, configs: list[Any]) -> str:
    """What a sweep would do: one line per run with the fields that vary across the sweep."""
    from attnlab.config import config_to_dict, flatten
    from attnlab.run import run_id

    flat = [flatten(config_to_dict(c)) for c in configs]
    varying = [k for k in flat[0] if len({repr(f.get(k)) for f in flat}) > 1] if flat else []
    skipped = " (skipped; --retry-failed runs them)" if p.failed else ""
    lines = [f"{len(p.run)} to run, {len(p.reuse)} reused, {len(p.failed)} failed before{skipped}"]
    for action, group in (("run", p.run), ("reuse", p.reuse), ("failed", p.failed)):
        for config in group:
            values = flatten(config_to_dict(config))
            shown = " ".join(f"{k}={values[k]}" for k in varying)
            lines.append(f"{action:<7}{run_id(config)}  {shown}")
    return "\n".join(lines)


@app.command()
def reproduce(
    paper: str = typer.Argument(..., help="Paper whose experiments to run (arda2026), all, or an experiment file (.yaml)."),
    experiment: list[str] = typer.Option([], "--experiment", "-e", help="Experiment key, e.g. E3 "
                                         "(repeatable; default: every experiment of the paper)."),
    preset: str = typer.Option("quick", help="quick (minutes on 2 CPU cores) or paper (the paper's sizes)."),
    out: Path = typer.Option(Path("results"), help="Results folder: runs/ (shared) and PAPER/PRESET/."),
    executor: str = typer.Option("local", help="local, dask or slurm (see attnlab sweep)."),
    workers: Optional[int] = typer.Option(1, help="local: processes (1 runs in this process)."),
    threads: Optional[int] = typer.Option(None, help="local/dask: torch threads per worker (default cores/workers; "
                                          "use 1 on a machine other jobs keep busy)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda[:N] for every run (default: as declared)."),
    quiet: bool = typer.Option(False, help="No progress display."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs to do and to reuse and the estimated "
                                 "wall time (from a few probe steps), and run nothing."),
) -> None:
    """Reproduce a paper's experiments: run (reusing finished runs), fit, judge, plot and report."""
    from attnlab.experiments.reproduce import PAPERS, reproduce as run_reproduction
    from attnlab.sweep.runner import StoreNotWritable

    if preset not in ("quick", "paper"):
        fail(f"--preset {preset!r}: allowed: quick, paper")
    if executor not in ("local", "dask", "slurm"):
        fail(f"--executor {executor!r}: allowed: local, dask, slurm")
    papers = list(PAPERS) if paper == "all" else [paper]
    if experiment and len(papers) > 1:
        fail("--experiment needs one paper, not all")
    if dry_run:
        from attnlab.experiments.plan import describe, plan

        if threads:
            import torch

            torch.set_num_threads(threads)
        try:
            for p in papers:
                typer.echo("\n".join(describe(p, preset, plan(p, experiment or None, preset, out, device),
                                               workers or 1)))
        except ConfigError as error:
            fail(str(error))
        return
    try:
        done = [run_reproduction(p, experiment or None, preset, out, executor, workers, device, not quiet, threads)
                for p in papers]
    except (ConfigError, StoreNotWritable) as error:
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or out}: {error.strerror or error}", code=1)
    failed = 0
    for reproduction in done:
        typer.echo(f"\n{reproduction.paper} ({reproduction.preset} preset)")
        for result in reproduction.results:
            for verdict in result.verdicts:
                typer.echo(f"  {verdict.text}")
        typer.echo(f"report: {reproduction.report}")
        if reproduction.failed:
            typer.echo(f"{reproduction.failed} of {reproduction.runs} runs failed:", err=True)
            for reason, count in reproduction.failures.items():
                typer.echo(f"  {count} x {reason}", err=True)
        failed += reproduction.failed
    if failed:
        fail(f"{failed} runs failed (records in {out / 'runs' / '.failed'}); the verdicts use the "
             "runs that finished; fix the cause and rerun", code=1)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
