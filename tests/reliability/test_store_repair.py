"""Issue 15, items 2-4, 13: the store keeps nothing half-written, repairs damaged runs, and
`train --force` replaces a result atomically."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import attnlab.run
from attnlab.cli import app
from attnlab.config import parse_config
from attnlab.run import open_store
from attnlab.store import COMPLETE, CURVES, SUMMARY, read_summary

TINY = {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "train": {"steps": 10}}
TRAIN = ["train", "--m", "4", "--n", "40", "--K", "64", "--T", "4", "--d", "3", "--steps", "10", "--quiet"]
SWEEP = {"name": "tiny", "base": TINY, "axes": {"model.m": [4, 6]}, "seeds": 1}


def sweep(tmp_path, *extra):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    return CliRunner().invoke(app, ["sweep", str(path), "--root", str(tmp_path / "runs"), "--workers", "1",
                                    "--quiet", *extra])


def only_run(root):
    (run_dir,) = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def test_train_force_replaces_the_result(tmp_path, monkeypatch):
    out = ["--out", str(tmp_path / "runs")]
    assert CliRunner().invoke(app, [*TRAIN, *out]).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    original = attnlab.run.train

    def retrained(config, **kwargs):
        result = original(config, **kwargs)
        result.summary["wall_time_s"] = 12345.0   # tells the new result from the old one
        return result

    monkeypatch.setattr(attnlab.run, "train", retrained)
    result = CliRunner().invoke(app, [*TRAIN, *out, "--force"])
    assert result.exit_code == 0, result.output
    assert "wall time 12345.00 s" in result.output
    assert read_summary(run_dir)["wall_time_s"] == 12345.0
    assert open_store(tmp_path / "runs").is_complete(parse_config(yaml.safe_load((run_dir / "config.yaml").read_text())))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run_dir.name]   # no temporary left


def test_train_force_that_fails_keeps_the_old_result(tmp_path, monkeypatch):
    out = ["--out", str(tmp_path / "runs")]
    CliRunner().invoke(app, [*TRAIN, *out])
    run_dir = only_run(tmp_path / "runs")
    before = (run_dir / SUMMARY).read_bytes()

    def broken(config, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(attnlab.run, "train", broken)
    result = CliRunner().invoke(app, [*TRAIN, *out, "--force"])
    assert result.exit_code == 1 and "error: out of memory" in result.output
    assert (run_dir / SUMMARY).read_bytes() == before


@pytest.mark.parametrize("damage", ["garbage summary", "deleted summary", "truncated curves", "edited summary"])
def test_a_damaged_run_is_named_and_recomputed(tmp_path, damage, caplog):
    assert sweep(tmp_path).exit_code == 0
    victim = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    if damage == "garbage summary":
        (victim / SUMMARY).write_text("not json")
    elif damage == "deleted summary":
        (victim / SUMMARY).unlink()
    elif damage == "truncated curves":
        data = (victim / CURVES).read_bytes()
        (victim / CURVES).write_bytes(data[: len(data) // 2])
    else:
        (victim / SUMMARY).write_text((victim / SUMMARY).read_text().replace('"steps_run": 10', '"steps_run": 11'))
    result = sweep(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 runs: 2 done, 0 failed" in result.output
    assert any(str(victim) in r.getMessage() and "recomputed" in r.getMessage() for r in caplog.records)
    summary = json.loads((victim / SUMMARY).read_text())
    assert summary["steps_run"] == 10
    pd.read_parquet(victim / CURVES)   # whole again
    assert (victim / COMPLETE).is_file()


def test_a_run_written_before_markers_is_adopted(tmp_path):
    assert sweep(tmp_path).exit_code == 0
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    stamps = {p: (p / SUMMARY).stat().st_mtime_ns for p in runs}
    for run_dir in runs:
        (run_dir / COMPLETE).unlink()
    assert sweep(tmp_path).exit_code == 0
    assert all((p / COMPLETE).is_file() and (p / SUMMARY).stat().st_mtime_ns == stamps[p] for p in runs)


def test_stale_temporary_folders_of_dead_writers_are_removed(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    root = tmp_path / "runs"
    stale = root / f".incomplete-0123456789abcdef-{dead}@{socket.gethostname()}-abc123"
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("x")
    assert sweep(tmp_path).exit_code == 0
    assert not stale.exists()
    assert not list(root.glob(".incomplete-*"))


def test_summary_is_strict_json_and_reads_back_non_finite_numbers(tmp_path):
    store = open_store(tmp_path)
    config = parse_config(TINY)
    store.write(config, pd.DataFrame({"step": [0]}), {"a": float("nan"), "b": {"c": float("inf")}, "d": None})
    text = (store.path(config) / SUMMARY).read_text()

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    strict = json.loads(text, parse_constant=refuse)
    assert strict == {"a": "NaN", "b": {"c": "Infinity"}, "d": None}
    back = store.summary(config)
    assert back["a"] != back["a"] and back["b"]["c"] == float("inf") and back["d"] is None
