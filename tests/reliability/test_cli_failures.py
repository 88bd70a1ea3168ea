"""Issue 15, items 1, 6-9, 11, 12, 14, 15: what a user meets, with a one-line message, an honest
exit status and nothing half-written."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import yaml

import attnlab.run
from attnlab.data.idx import IdxError, read_idx
from clitools import cli, one_line_error, tiny_experiments

TINY_DATA = {"n": 40, "K": 64, "T": 4, "d": 3}
TRAIN = ["train", "--m", "4", "--n", "40", "--K", "64", "--T", "4", "--d", "3", "--steps", "10", "--quiet"]

EXPERIMENTS = tiny_experiments((4, 16, 64), seeds=2)




def experiment_file(tmp_path, **changes):
    raw = yaml.safe_load(yaml.safe_dump(EXPERIMENTS))
    raw["experiments"]["A1"].update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def stored_runs(root):
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.exists() else []


# ------------------------------------------------------------------------------------------ item 1
def test_reproduce_with_failed_runs_says_why_and_exits_1(tmp_path, monkeypatch):
    original = attnlab.run.measure

    def flaky(config):
        if config.model.m == 16:
            raise RuntimeError("no CUDA here")
        return original(config)

    monkeypatch.setattr(attnlab.run, "measure", flaky)
    path = experiment_file(tmp_path)
    for _ in range(2):   # a rerun (the failures are recorded) exits 1 again
        result = cli("reproduce", path, "--out", tmp_path, "--quiet")
        line = one_line_error(result, code=1)
        assert "2 runs failed" in line
        assert "2 of 6 runs failed:" in result.output and "2 x RuntimeError: no CUDA here" in result.output
        assert "A1 approximation error ~ m^" in result.output   # the claim is still judged on the others
    table = pd.read_csv(tmp_path / "tiny" / "quick" / "A1" / "results.csv")
    assert (table["status"] == "failed").sum() == 2 and (table["status"] == "done").sum() == 4
    report = (tmp_path / "tiny" / "quick" / "report.md").read_text()
    assert "2 of 6 runs failed" in report and "RuntimeError: no CUDA here" in report


# ------------------------------------------------------------------------------------------ item 6
@pytest.mark.parametrize("changes, field", [
    ({"claims": [{"metric": "approximation_eror", "quantity": "q", "predicted": -0.5}]}, "A1.claims.0.metric"),
    ({"x": "model.width"}, "A1.x = 'model.width'"),
    ({"x": "data.n"}, "A1.claims.0: x = 'data.n' takes one value"),
    ({"series": {"a": {}}, "claims": [{"metric": "approximation_error", "quantity": "q", "order": ["a", "b"]}]},
     "A1.claims.0.order: ['b']"),
])
def test_an_experiment_that_cannot_be_judged_is_refused_before_any_run(tmp_path, changes, field):
    result = cli("reproduce", experiment_file(tmp_path, **changes), "--out", tmp_path, "--quiet")
    assert field in one_line_error(result)
    assert stored_runs(tmp_path / "runs") == []


# ------------------------------------------------------------------------------------------ item 7
def test_diverged_runs_are_named_and_not_fitted(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "div", "base": {"model": {"m": 4}, "data": TINY_DATA,
                                                             "train": {"method": "gd", "steps": 10}},
                                     "axes": {"train.lr": [0.1, 1.0e6]}, "seeds": 1}))
    result = cli("sweep", sweep, "--root", tmp_path / "runs", "--workers", 1, "--quiet")
    assert result.exit_code == 0, result.output
    assert "2 runs: 1 done, 1 diverged, 0 failed" in result.output
    table = pd.read_parquet(tmp_path / "runs" / "div.parquet")
    (diverged,) = table.loc[table["status"] == "diverged", "run_id"]
    assert f"diverged (the loss left the finite numbers): {diverged}" in result.output
    assert table.loc[table["status"] == "diverged", "train.lr"].item() == 1.0e6
    report = cli("report", tmp_path / "runs", "--out", tmp_path / "report", "--n-boot", 20)
    assert report.exit_code == 0, report.output
    summary = (tmp_path / "report" / "report.md").read_text()
    assert "1 diverged" in summary and "left out of the figures' fits" in summary
    assert "| diverged |" in summary   # the run is marked in the table


# ------------------------------------------------------------------------------------------ item 8
def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    header = bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big")
    bomb = tmp_path / "labels.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(header)
        for _ in range(64):
            handle.write(bytes(1 << 20))   # 64 MiB of zeros after a 10-byte array
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    with pytest.raises(IdxError, match=r"labels.gz.*longer than its header says.*needs 10 data bytes"):
        read_idx(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20
    small = tmp_path / "ok.gz"
    small.write_bytes(gzip.compress(header + bytes(range(10))))
    assert np.array_equal(read_idx(small), np.arange(10, dtype=np.uint8))


# ------------------------------------------------------------------------------------------ item 9
def test_train_with_a_bad_data_file_is_one_line(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04garbage")
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04garbage")
    result = cli("train", "--set", "data.name=mnist", "--set", f"data.path={folder}", "--set", "model=shallow-encoder",
                 "--steps", 2, "--quiet", "--out", tmp_path / "runs")
    assert "magic number" in one_line_error(result) or "mnist" in one_line_error(result)
    assert stored_runs(tmp_path / "runs") == []
    missing = cli("train", "--set", "data.name=mnist", "--set", f"data.path={tmp_path / 'none'}",
                  "--set", "model=shallow-encoder", "--steps", 2, "--quiet", "--out", tmp_path / "runs")
    assert str(tmp_path / "none") in one_line_error(missing)


@pytest.mark.parametrize("text, expected", [
    ("train:\n\tsteps: 3\n", "not valid YAML"),
    ("paper: !!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
])
def test_experiment_file_with_a_tab_or_a_python_tag_is_one_line(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert expected in one_line_error(cli("reproduce", path, "--out", tmp_path))


def test_set_with_broken_yaml_is_one_line(tmp_path):
    line = one_line_error(cli(*TRAIN, "--set", "train.radius={", "--out", tmp_path / "runs"))
    assert "--set 'train.radius={'" in line


def test_report_skips_a_run_with_a_broken_config(tmp_path, caplog):
    root = tmp_path / "runs"
    for m in (4, 6, 8):
        assert cli(*TRAIN[:2], m, *TRAIN[3:], "--out", root).exit_code == 0
    broken = sorted(stored_runs(root))[0]
    (broken / "config.yaml").write_text("model: {")
    result = cli("report", root, "--n-boot", 50)
    assert result.exit_code == 0, result.output
    assert any(str(broken) in r.getMessage() for r in caplog.records)


def test_read_only_store_with_every_run_complete_is_one_line(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": {"model": {"m": 4}, "data": TINY_DATA,
                                                           "train": {"steps": 5}}, "seeds": 1}))
    assert cli("sweep", sweep, "--root", tmp_path / "runs", "--workers", 1, "--quiet").exit_code == 0
    (tmp_path / "file").write_text("")
    result = cli("sweep", sweep, "--root", tmp_path / "runs", "--workers", 1, "--quiet",
                 "--out", tmp_path / "file" / "s.parquet")
    assert "cannot write the results table" in one_line_error(result, code=1)


# ----------------------------------------------------------------------------------------- item 11
@pytest.mark.parametrize("flag", ["--n", "--m"])
def test_a_run_larger_than_the_machine_is_refused_before_allocating(tmp_path, flag):
    args = [*TRAIN, "--out", tmp_path / "runs"]
    args[args.index(flag) + 1] = "1000000000"
    line = one_line_error(cli(*args))
    assert "GiB" in line and "reduce the sizes" in line
    assert stored_runs(tmp_path / "runs") == []


# ----------------------------------------------------------------------------------------- item 12
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(tmp_path, value):
    line = one_line_error(cli(*TRAIN, "--set", f"train.lr={value}", "--out", tmp_path / "runs"))
    assert "train.lr" in line
    radius = one_line_error(cli(*TRAIN, "--set", f"train.radius.w={value}", "--out", tmp_path / "runs"))
    assert "train.radius.w" in radius


# ----------------------------------------------------------------------------------------- item 14
def test_empty_config_and_sweep_files_are_refused(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert "is empty" in one_line_error(cli("train", "--config", empty, "--out", tmp_path / "runs"))
    assert "is empty" in one_line_error(cli("sweep", empty, "--root", tmp_path / "runs"))
    assert stored_runs(tmp_path / "runs") == []


# ----------------------------------------------------------------------------------------- item 15
def test_an_unwritable_store_is_named_before_any_run(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": {"model": {"m": 4}, "data": TINY_DATA}, "seeds": 1}))
    (tmp_path / "file").write_text("")
    store = tmp_path / "file" / "runs"   # not a directory: writable by nobody, root included
    monkeypatch.setattr(attnlab.run, "setup", lambda *a, **k: pytest.fail("trained before checking the store"))
    line = one_line_error(cli("sweep", sweep, "--root", store, "--workers", 1, "--quiet"))
    assert f"run store '{store}' is not writable" in line
    line = one_line_error(cli(*TRAIN, "--out", store))
    assert f"run store '{store}' is not writable" in line and "--out" in line
    line = one_line_error(cli("reproduce", experiment_file(tmp_path), "--out", tmp_path / "file", "--quiet"))
    assert f"run store '{tmp_path / 'file' / 'runs'}' is not writable" in line
