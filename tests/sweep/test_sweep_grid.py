"""Grid expansion and validation of sweep files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attnlab.cli import app

from attnlab.config import ConfigError
from attnlab.sweep.grid import expand, load_sweep, parse_sweep
from attnlab.run import run_id

from sweeptools import TINY_BASE, tiny_sweep, write_sweep


def test_expand_orders_axes_then_zipped_rows_then_seeds():
    spec = parse_sweep({"base": TINY_BASE, "axes": {"train.method": ["gd", "projgd"]},
                        "zip_axes": {"data.n": [40, 80], "model.m": [4, 8]}, "seeds": 2})
    configs = expand(spec)
    got = [(c.train.method, c.data.n, c.model.m, c.seed) for c in configs]
    assert got == [(method, n, m, seed) for method in ("gd", "projgd")
                   for n, m in ((40, 4), (80, 8)) for seed in (0, 1)]
    assert spec.size == len(configs) == 8
    assert all(c.data.K == 64 and c.train.steps == 20 for c in configs)  # the base is kept


def test_seed_list_and_default_seed():
    assert [c.seed for c in expand(parse_sweep({"base": TINY_BASE, "seeds": [5, 9]}))] == [5, 9]
    assert [c.seed for c in expand(parse_sweep({"base": {**TINY_BASE, "seed": 3}}))] == [3]


def test_duplicate_runs_are_kept_once():
    configs = expand(parse_sweep({"base": TINY_BASE, "axes": {"model.m": [4, 4, 6]}}))
    assert [c.model.m for c in configs] == [4, 6]


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.sampled_from([2, 4, 6, 8, 10]), min_size=1, max_size=4, unique=True),
       steps=st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True),
       seeds=st.integers(1, 4))
def test_grid_size_is_the_product_and_run_ids_are_distinct(widths, steps, seeds):
    spec = parse_sweep({"base": TINY_BASE, "axes": {"model.m": widths, "train.steps": steps}, "seeds": seeds})
    configs = expand(spec)
    assert len(configs) == len(widths) * len(steps) * seeds == spec.size
    assert len({run_id(c) for c in configs}) == len(configs)


@pytest.mark.parametrize("raw, message", [
    ({"base": TINY_BASE, "axes": {"model.mm": [4, 8]}},
     "axes.model.mm[0] = 4: unknown field (allowed: name, paired, m, activation)"),
    ({"base": TINY_BASE, "axes": {"model.m": []}}, "axes.model.m = []: an axis needs at least one value"),
    ({"base": TINY_BASE, "axes": {"model.m": [4, 8, "x"]}}, "axes.model.m[2] = 'x': Input should be a valid integer"),
    ({"base": TINY_BASE, "zip_axes": {"data.n": [40, 1], "model.m": [4, 6]}},
     "zip_axes.data.n[1] = 1: Input should be greater than or equal to 2"),
    ({"base": TINY_BASE, "axes": {"model.m": 4}}, "axes.model.m = 4: Input should be a valid list"),
    ({"base": {"model": {"q": 1}}}, "base.model.q = 1: unknown field"),
    ({"base": TINY_BASE, "axis": {}}, "axis = {}: unknown field (allowed: name, base, axes, zip_axes, seeds, plugins)"),
    ({"base": TINY_BASE, "seeds": 0}, "seeds = 0: a number of seeds must be at least 1"),
    ({"base": TINY_BASE, "zip_axes": {"data.n": [40], "model.m": [4, 6]}}, "zip_axes lists must have equal lengths"),
    ({"base": TINY_BASE, "axes": {"model.m": [4, 3]}}, "axes.model.m[1] = 3: must be even for paired initialisation"),
])
def test_invalid_sweeps_name_the_field(raw, message):
    with pytest.raises(ConfigError) as error:
        expand(parse_sweep(raw))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_value_valid_only_with_another_axis_is_accepted():
    spec = parse_sweep({"base": TINY_BASE, "axes": {"model.paired": [False]}, "zip_axes": {"model.m": [3, 5]}})
    assert [c.model.m for c in expand(spec)] == [3, 5]


def test_load_sweep_names_the_sweep_after_the_file(tmp_path):
    spec = load_sweep(write_sweep(tmp_path / "widths.yaml", {k: v for k, v in tiny_sweep().items() if k != "name"}))
    assert spec.name == "widths" and spec.size == 6


@pytest.mark.parametrize("axes, field", [({"model.mm": [4]}, "axes.model.mm[0]"),
                                         ({"model.m": []}, "axes.model.m"),
                                         ({"model.m": [4, "wide"]}, "axes.model.m[1]")])
def test_cli_rejects_invalid_sweep_before_any_run(tmp_path, axes, field):
    path = write_sweep(tmp_path / "bad.yaml", {"base": TINY_BASE, "axes": {"model.m": [4, 6], **axes}, "seeds": 2})
    root = tmp_path / "runs"
    done = CliRunner().invoke(app, ["sweep", str(path), "--root", str(root), "--workers", "1"])
    assert done.exit_code == 2
    assert f"error: invalid sweep file {str(path)!r}: {field}" in done.output
    assert len(done.output.strip().splitlines()) == 1
    assert not root.exists()  # nothing ran, nothing was written
