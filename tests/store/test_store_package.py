"""The store layer: the one atomic writer, run identity and the table reader."""

from __future__ import annotations

import pytest

from attnlab.config import flatten, parse_config
from attnlab.store import RunStore, atomic_write, atomic_write_text, run_id, seedless_key


def test_atomic_write_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    target = atomic_write_text(tmp_path / "table.csv", "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]   # no temporary file left behind


def test_run_id_covers_the_results_version():
    config = parse_config({"model": {"m": 4}})
    assert run_id(config, "a") == run_id(config, "a") != run_id(config, "b")
    assert RunStore("x", "a").run_id(config) == run_id(config, "a")


def test_table_of_a_store_without_configs_reads_every_whole_run_of_any_version(tmp_path):
    import pandas as pd

    config = parse_config({"model": {"m": 4}, "train": {"steps": 3}})
    older = RunStore(tmp_path, "older")
    older.write(config, pd.DataFrame({"step": [0]}), {"last": {"train_loss": 1.0}, "diverged_at": None})
    current = RunStore(tmp_path, "current")
    assert current.table([config])["status"].tolist() == ["pending"]   # not this code's result
    table = current.table()
    assert table["run_id"].tolist() == [older.run_id(config)] and table["status"].tolist() == ["done"]
    assert table["last.train_loss"].tolist() == [1.0] and table["model.m"].tolist() == [4]


def test_one_flatten_keeps_lists_and_empty_mappings_only_when_asked():
    tree = {"a": {"b": 1, "c": [1, 2], "e": {}}, "d": None}
    assert flatten(tree) == {"a.b": 1, "a.c": [1, 2], "d": None}
    assert flatten(tree, keep_empty=True) == {"a.b": 1, "a.c": [1, 2], "a.e": {}, "d": None}


def test_a_thinned_copy_is_adopted_with_its_summary_and_fewer_curve_rows(tmp_path):
    import pandas as pd

    from attnlab.store import thin_copy

    config = parse_config({"model": {"m": 4}, "data": {"n": 20, "T": 3, "d": 2, "K": 8}})
    source = RunStore(tmp_path / "a", "v1")
    curves = pd.DataFrame({"step": range(101), "train_loss": [1.0 / (k + 1) for k in range(101)]})
    source.write(config, curves, {"last": {"train_loss": 0.5}})
    target = RunStore(tmp_path / "b", "v1")
    thin_copy(source.path(config), target.path(config), every=25)
    assert target.is_complete(config)
    assert target.summary(config) == source.summary(config)
    assert target.curves(config)["step"].tolist() == [0, 25, 50, 75, 100]
    with pytest.raises(ValueError, match="every = 0"):
        thin_copy(source.path(config), tmp_path / "c", every=0)


def test_configs_that_differ_only_by_seed_share_the_seedless_key():
    base = {"model": {"m": 4}, "data": {"n": 10, "T": 3, "d": 2, "K": 8}}
    a, b = parse_config({**base, "seed": 1}), parse_config({**base, "seed": 2})
    assert seedless_key(a) == seedless_key(b)
    assert seedless_key(a) != seedless_key(parse_config({**base, "model": {"m": 6}, "seed": 1}))
