"""The `attnlab` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from attnlab.config import ConfigError, apply_overrides, load_config, parse_config

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
        overrides[key.strip()] = yaml.safe_load(value)
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
    from attnlab.run import run

    try:
        with training_progress(cfg.train.steps, enabled=not quiet) as progress:
            path = run(cfg, root=out, force=force, progress=progress)
    except RuntimeError as error:
        fail(str(error), code=1)
    summary = json.loads((path / "summary.json").read_text())
    typer.echo(format_summary(summary))
    typer.echo(f"run directory: {path}")


def format_summary(summary: dict[str, Any]) -> str:
    """A short table of the last, best and averaged iterates' losses."""
    lines = [f"{'iterate':<9}{'train loss':>14}{'val loss':>14}"]
    for name in ("last", "best", "average"):
        it = summary[name]
        lines.append(f"{name:<9}{it['train_loss']:>14.6g}{it['val_loss']:>14.6g}")
    if summary.get("diverged_at") is not None:
        lines.append(f"diverged at step {summary['diverged_at']}")
    lines.append(f"wall time {summary['wall_time_s']:.2f} s")
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
