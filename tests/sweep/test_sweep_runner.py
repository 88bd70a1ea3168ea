"""Running sweeps: reuse, failures and retries, seed grouping, the results table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import attnlab.run
from attnlab.sweep.executors import split_tasks
from attnlab.sweep.grid import expand, parse_sweep
from attnlab.sweep.runner import group_by_seed, run_sweep, triage, write_table
from attnlab.run import open_store, run_id, run_many

from sweeptools import comparable, run_dirs, tiny_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_configs(**kwargs):
    return expand(parse_sweep(tiny_sweep(**kwargs)))


@pytest.fixture
def trained(monkeypatch):
    """Count the configs that attnlab.run sets up for training (one setup per trained run)."""
    seen = []
    real = attnlab.run.setup

    def counting(config, *args, **kwargs):
        seen.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(attnlab.run, "setup", counting)
    return seen


def test_second_run_executes_nothing_and_gives_the_same_table(tmp_path, trained):
    configs = tiny_configs()
    first = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    assert len(trained) == len(configs) == 6
    assert list(first["run_id"]) == [run_id(c) for c in configs]
    assert (first["status"] == "done").all()
    second = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    assert len(trained) == 6  # nothing ran again
    pd.testing.assert_frame_equal(first, second)
    assert triage(configs, open_store(tmp_path)).reuse == configs


def test_table_holds_config_and_summary_columns(tmp_path):
    configs = tiny_configs(m_values=(4,), seeds=2)
    table = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    for column in ("run_id", "status", "model.m", "data.T", "train.radius.c", "seed", "last.train_loss",
                   "best.train_loss", "best.step", "average.train_loss", "average.val_loss", "wall_time_s",
                   "steps_run", "versions.torch", "error"):
        assert column in table.columns, column
    summary = open_store(tmp_path).summary(configs[1])
    row = table.iloc[1]
    assert row["seed"] == 1 and row["model.m"] == 4
    assert row["last.train_loss"] == summary["last"]["train_loss"]
    assert row["best.step"] == summary["best"]["step"]


def test_results_table_without_running_marks_pending(tmp_path):
    configs = tiny_configs(m_values=(4,), seeds=2)
    run_sweep(configs[:1], open_store(tmp_path), run_many, workers=1, progress=False)
    table = open_store(tmp_path).table(configs)
    assert list(table["status"]) == ["done", "pending"]
    assert pd.isna(table["last.train_loss"].iloc[1])


def test_failed_run_is_recorded_and_only_it_is_retried(tmp_path, monkeypatch):
    configs = tiny_configs(m_values=(4,), seeds=3)
    bad = configs[1]
    real = attnlab.run.setup

    def breaks_on_seed_1(config, *args, **kwargs):
        if config.seed == 1:
            raise FloatingPointError("loss exploded")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(attnlab.run, "setup", breaks_on_seed_1)
    table = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    assert list(table["status"]) == ["done", "failed", "done"]  # the sweep went on after the failure
    assert table["error"].iloc[1] == "FloatingPointError: loss exploded"
    record = json.loads(open_store(tmp_path).failures.path(bad).read_text())
    assert record["run_id"] == run_id(bad) and record["config"]["seed"] == 1
    assert "FloatingPointError" in record["traceback"] and "breaks_on_seed_1" in record["traceback"]

    # A plain rerun skips the failed run; --retry-failed runs it, and only it.
    monkeypatch.setattr(attnlab.run, "setup", real)
    assert triage(configs, open_store(tmp_path)).failed == [bad]
    again = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, table)
    trained = []
    monkeypatch.setattr(attnlab.run, "setup", lambda c, *a, **k: trained.append(c) or real(c, *a, **k))
    retried = run_sweep(configs, open_store(tmp_path), run_many, workers=1, retry_failed=True, progress=False)
    assert trained == [bad]
    assert (retried["status"] == "done").all()
    assert not open_store(tmp_path).failures.has(bad)
    numbers = ["run_id", "last.train_loss", "best.train_loss", "best.step", "average.val_loss", "wall_time_s"]
    pd.testing.assert_frame_equal(retried.loc[[0, 2], numbers], table.loc[[0, 2], numbers], check_dtype=False)


def test_group_by_seed_and_split(tmp_path):
    configs = tiny_configs(m_values=(4, 6), seeds=3)
    groups = group_by_seed(configs)
    assert [[c.seed for c in g] for g in groups] == [[0, 1, 2], [0, 1, 2]]
    assert [g[0].model.m for g in groups] == [4, 6]
    assert [len(t) for t in split_tasks(groups, parallelism=1)] == [3, 3]
    assert [len(t) for t in split_tasks(groups, parallelism=4)] == [2, 1, 2, 1]
    assert sum(split_tasks(groups, parallelism=4), []) == configs


def test_seed_groups_go_through_run_many(tmp_path, monkeypatch):
    batches = []
    real = attnlab.run.run_many
    monkeypatch.setattr(attnlab.run, "run_many", lambda cs, root: batches.append(cs) or real(cs, root))
    configs = tiny_configs(m_values=(4, 6), seeds=2)
    run_sweep(configs, open_store(tmp_path), attnlab.run.run_many, workers=1, progress=False)
    assert batches == [configs[:2], configs[2:]]


def test_process_pool_gives_the_same_table_as_in_process(tmp_path):
    configs = tiny_configs(m_values=(4, 6), seeds=2)
    pooled = run_sweep(configs, open_store(tmp_path / "pool"), run_many, workers=2, progress=False)
    inline = run_sweep(configs, open_store(tmp_path / "inline"), run_many, workers=1, progress=False)
    pd.testing.assert_frame_equal(comparable(pooled), comparable(inline))
    assert len(run_dirs(tmp_path / "pool")) == len(configs)


def test_write_table_round_trips_mixed_columns(tmp_path):
    raw = tiny_sweep(m_values=(4,), seeds=1)
    raw["axes"]["train.radius"] = [1.0, "none"]
    configs = expand(parse_sweep(raw))
    table = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    parquet, csv = write_table(table, tmp_path / "tables" / "tiny.parquet")
    back = pd.read_parquet(parquet)
    assert list(back["train.radius.c"]) == ["1.0", "none"]
    assert list(back["run_id"]) == list(table["run_id"])
    assert len(pd.read_csv(csv)) == 2
    assert not list((tmp_path / "tables").glob(".*"))  # no temporary files left


def test_ctrl_c_keeps_finished_runs_and_rerun_completes_only_the_rest(tmp_path, monkeypatch):
    configs = tiny_configs(m_values=(4, 6), seeds=2)
    real, trained = attnlab.run.setup, []

    def interrupted_at_third(config, *args, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(attnlab.run, "setup", interrupted_at_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    assert sorted(p.name for p in run_dirs(tmp_path)) == sorted(run_id(c) for c in configs[:2])
    assert not list(tmp_path.glob(".incomplete-*")) and not open_store(tmp_path).failures.folder.exists()

    rerun = []
    monkeypatch.setattr(attnlab.run, "setup", lambda c, *a, **k: rerun.append(c) or real(c, *a, **k))
    table = run_sweep(configs, open_store(tmp_path), run_many, workers=1, progress=False)
    assert rerun == configs[2:]
    assert (table["status"] == "done").all()


def test_progress_display_counts_done_and_failed(capsys):
    from attnlab.sweep.progress import sweep_progress
    from attnlab.sweep.tasks import Outcome

    with sweep_progress(3, name="tiny") as advance:
        advance([Outcome("a", "done"), Outcome("b", "failed", "boom")])
        advance([Outcome("c", "done")])
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "tiny" in text and "done 2" in text and "failed 1" in text and "remaining 0" in text
