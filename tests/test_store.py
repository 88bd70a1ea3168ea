import pandas as pd
import pytest
import torch

from attnlab.config import parse_config
from attnlab.run import run, train
from attnlab.run import open_store, run_id

TINY = {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "train": {"steps": 15, "record_every": 1}}


def test_same_config_and_seed_give_bit_identical_curves():
    config = parse_config(TINY | {"seed": 3})
    a, b = train(config), train(config)
    pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)
    for name in a.last:
        assert torch.equal(a.last[name], b.last[name])


def test_run_id_depends_on_every_field():
    base = parse_config(TINY)
    assert run_id(base) == run_id(parse_config(TINY))
    assert run_id(base) != run_id(parse_config(TINY | {"seed": 1}))
    assert run_id(base) != run_id(parse_config({**TINY, "train": {**TINY["train"], "lr": 0.5}}))


def test_finished_runs_are_reused(tmp_path):
    config = parse_config(TINY)
    path = run(config, root=tmp_path)
    stamp = (path / "summary.json").stat().st_mtime_ns
    assert run(config, root=tmp_path) == path
    assert (path / "summary.json").stat().st_mtime_ns == stamp


def test_interrupted_training_leaves_nothing_that_looks_complete(tmp_path):
    def interrupt(step, loss):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(parse_config(TINY), root=tmp_path, progress=interrupt)
    assert not open_store(tmp_path).is_complete(parse_config(TINY))
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")] if tmp_path.exists() else True


def test_failed_write_leaves_no_run_directory(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError):
        run(parse_config(TINY), root=tmp_path)
    assert list(tmp_path.iterdir()) == []
