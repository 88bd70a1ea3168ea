"""Issue 23, items 3, 4, 6, 7, 9, 11 and 12: claims that cannot be read expire, a reproduction whose
runs all fail reports instead of crashing, the store never reports another run's result, the memory
estimate covers the teacher and the data's generation, `compare` says when a run diverged, the run
functions take a mapping, and a damaged cached kernel is rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import attnlab.run
from attnlab.config import parse_config
from attnlab.run import estimated_bytes, open_store, run_id
from attnlab.store import COMPLETE, SUMMARY
from attnlab.sweep import locks as locks_module
from attnlab.sweep.locks import RunLocks
from attnlab.sweep.grid import expand, parse_sweep
from clitools import cli, one_line_error, tiny_experiments

TINY = {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "train": {"steps": 10}}
TINY_FLAGS = ["--m", "4", "--n", "40", "--K", "64", "--T", "4", "--d", "3", "--steps", "10", "--quiet"]
SWEEP = {"name": "tiny", "base": TINY, "axes": {"model.m": [4, 6]}, "seeds": 1}
EXPERIMENTS = tiny_experiments()




def sweep(tmp_path, *extra):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    return cli("sweep", path, "--root", tmp_path / "runs", "--workers", 1, "--quiet", *extra)


def run_dirs(root):
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


# -------------------------------------------------------------------- item 3: unreadable claims
def test_an_empty_claim_left_behind_does_not_hang_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(locks_module, "LOCK_WRITE_S", 1.0)
    first, _ = expand(parse_sweep(SWEEP))
    lock = RunLocks(tmp_path / "runs", run_id).path(first)
    lock.parent.mkdir(parents=True)
    lock.write_text("")   # `: > ROOT/.claims/<run-id>.lock`
    start = time.perf_counter()
    result = sweep(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 runs: 2 done, 0 failed" in result.output
    assert time.perf_counter() - start < 60


def test_an_empty_claim_older_than_a_write_is_stale_at_once(tmp_path):
    first, _ = expand(parse_sweep(SWEEP))
    claims = RunLocks(tmp_path, run_id)
    claims.folder.mkdir()
    claims.path(first).write_text("")
    assert not claims.take(first)   # just created: it may be being written
    old = time.time() - locks_module.LOCK_WRITE_S - 1
    os.utime(claims.path(first), (old, old))
    assert claims.take(first) and claims.is_ours(first)


def test_a_claim_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    first, _ = expand(parse_sweep(SWEEP))
    claims = RunLocks(tmp_path, run_id)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(locks_module.json, "dump", full_disk)
    with pytest.raises(OSError):
        claims.take(first)
    assert not claims.path(first).exists()


# ------------------------------------------------------------------ item 4: every run failing
def experiment_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENTS))
    return path


def test_reproduce_whose_runs_all_fail_reports_them(tmp_path, monkeypatch):
    def broken(config):
        raise RuntimeError("no CUDA here")

    monkeypatch.setattr(attnlab.run, "measure", broken)
    result = cli("reproduce", experiment_file(tmp_path), "--out", tmp_path, "--quiet")
    line = one_line_error(result, code=1)
    assert "2 runs failed" in line and "2 x RuntimeError: no CUDA here" in result.output
    report = (tmp_path / "tiny" / "quick" / "report.md").read_text()
    assert "2 of 2 runs failed" in report and "Not judged" in report
    table = pd.read_csv(tmp_path / "tiny" / "quick" / "A1" / "results.csv")
    assert (table["status"] == "failed").all()


def test_reproduce_refuses_an_unknown_device_before_running(tmp_path):
    line = one_line_error(cli("reproduce", experiment_file(tmp_path), "--out", tmp_path / "o", "--device", "tpu",
                              "--quiet"))
    assert "device = 'tpu'" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_reproduce_on_cuda_without_cuda_says_so(tmp_path, dry_run):
    line = one_line_error(cli("reproduce", experiment_file(tmp_path), "--out", tmp_path / "o", "--device", "cuda",
                              "--quiet", *dry_run))
    assert "'cuda'" in line and "CUDA is not available" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_reproduce_reports_cuda_runs_from_the_store_without_cuda(tmp_path):
    shutil.copytree(Path(__file__).parents[2] / "docs" / "paper" / "wu2023" / "W5" / "runs", tmp_path / "runs")
    result = cli("reproduce", "wu2023", "-e", "W5", "--preset", "paper", "--device", "cuda", "--out", tmp_path,
                 "--quiet")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "wu2023" / "paper" / "W5" / "results.csv")
    assert len(table) == 40 and (table["status"] == "done").all()


# ------------------------------------------------------------------ item 6: another run's result
def test_swapped_run_directories_are_recomputed_not_misreported(tmp_path, caplog):
    assert sweep(tmp_path).exit_code == 0
    before = pd.read_csv(tmp_path / "runs" / "tiny.csv").set_index("model.m")["last.train_loss"]
    a, b = run_dirs(tmp_path / "runs")
    a.rename(tmp_path / "aside")
    b.rename(a)
    (tmp_path / "aside").rename(b)
    result = sweep(tmp_path)
    assert result.exit_code == 0, result.output
    after = pd.read_csv(tmp_path / "runs" / "tiny.csv").set_index("model.m")["last.train_loss"]
    pd.testing.assert_series_equal(before, after)
    assert any("another run" in r.getMessage() for r in caplog.records)
    for run_dir in run_dirs(tmp_path / "runs"):   # each directory holds its own run again
        assert run_id(parse_config(yaml.safe_load((run_dir / "config.yaml").read_text()))) == run_dir.name
        assert json.loads((run_dir / SUMMARY).read_text())["run_id"] == run_dir.name


def test_an_edited_summary_without_its_marker_is_not_adopted(tmp_path):
    assert sweep(tmp_path).exit_code == 0
    before = pd.read_csv(tmp_path / "runs" / "tiny.csv")
    victim = run_dirs(tmp_path / "runs")[0]
    (victim / COMPLETE).unlink()
    summary = json.loads((victim / SUMMARY).read_text())
    summary["last"]["train_loss"] = 123.0
    (victim / SUMMARY).write_text(json.dumps(summary))
    assert sweep(tmp_path).exit_code == 0
    after = pd.read_csv(tmp_path / "runs" / "tiny.csv")
    assert 123.0 not in after["last.train_loss"].tolist()
    pd.testing.assert_series_equal(before["last.train_loss"], after["last.train_loss"])


# --------------------------------------------------------------------------- item 7: memory
def test_the_estimate_counts_the_teachers_draws():
    config = parse_config({**TINY, "data": {**TINY["data"], "K": 100_000_000}})
    assert estimated_bytes(config) >= 8 * 100_000_000 * (3 * 3 + 3)   # W (K, d, d), U (K, d) in float64


def test_the_estimate_counts_generation_in_float64_and_the_label_chunks():
    config = parse_config({**TINY, "data": {**TINY["data"], "T": 1_000_000}})
    generated = 8 * 40 * 1_000_000 * 3
    chunk = 4 * 1_000_000 * 512   # one (sample, T, 512 draws) float32 array of the labels
    assert estimated_bytes(config) >= generated + 2 * chunk


def test_train_with_too_many_teacher_draws_is_refused_in_one_line(tmp_path):
    line = one_line_error(cli("train", *TINY_FLAGS, "--K", "10000000000", "--out", tmp_path))
    assert "needs at least" in line and "data.K = 10000000000" in line


# ----------------------------------------------------------------------- item 9: compare diverges
def test_compare_says_when_the_run_diverged(tmp_path):
    result = cli("compare", *[f for f in TINY_FLAGS if f != "--quiet"], "--method", "gd", "--lr", "1e9",
                 "--out", tmp_path)
    assert "diverged at step" in result.output, result.output


# ------------------------------------------------------------------------ item 11: a plain mapping
def test_train_takes_a_mapping():
    from attnlab.run import train

    by_dict = train(TINY)
    by_config = train(parse_config(TINY))
    pd.testing.assert_frame_equal(by_dict.curves, by_config.curves)


def test_train_names_the_type_it_expects():
    from attnlab.run import run, train

    with pytest.raises(TypeError, match="RunConfig or a mapping"):
        train(42)
    with pytest.raises(TypeError, match="RunConfig or a mapping"):
        run("config.yaml")


# ------------------------------------------------------------------- item 12: cached kernels
def test_a_truncated_cached_kernel_is_rebuilt(tmp_path):
    env = {**os.environ, "ATTNLAB_CACHE": str(tmp_path), "ATTNLAB_NATIVE": "1"}
    load = ("from attnlab.models.native import build; lib = build.load('indrnn'); "
            "assert lib is not None; print(lib._name)")
    first = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    library = first.stdout.strip().splitlines()[-1]
    with open(library, "r+b") as handle:
        handle.truncate(4096)
    again = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True)
    assert again.returncode == 0, (again.returncode, again.stderr[-2000:])
    assert os.path.getsize(library) > 4096


def test_a_copied_run_directory_does_not_break_the_report(tmp_path, caplog):
    import shutil

    assert sweep(tmp_path).exit_code == 0
    original = run_dirs(tmp_path / "runs")[0]
    shutil.copytree(original, tmp_path / "runs" / "backup-of-a-run")
    result = cli("report", tmp_path / "runs", "--out", tmp_path / "report", "--n-boot", 50)
    assert result.exit_code == 0, result.output
    assert any("backup-of-a-run" in r.getMessage() and "copy" in r.getMessage() for r in caplog.records)
