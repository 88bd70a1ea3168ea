"""Issue 23, items 1, 2, 5, 8, 10 and the low ones on input: nothing is written outside the store,
no input hangs, and a user's mistake is one line (exit 2), never a traceback."""

from __future__ import annotations

import time

import pytest
import yaml

from attnlab.config import ConfigError, load_config, parse_config
from attnlab.sweep.grid import MAX_RUNS, expand, parse_sweep
from clitools import cli, one_line_error, tiny_experiments

TINY = {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "train": {"steps": 5}}
TINY_FLAGS = ["--m", "4", "--n", "40", "--K", "64", "--T", "4", "--d", "3", "--steps", "5", "--quiet"]

EXPERIMENTS = tiny_experiments()




def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------- item 1: outside the store
@pytest.mark.parametrize("name", ["../../escaped", "/tmp/attnlab-escaped-x", "a/b", "..", "", "."])
def test_a_sweep_name_that_is_not_a_plain_file_name_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    sweep = write_yaml(tmp_path / "t.yaml", {"name": name, "base": TINY})
    line = one_line_error(cli("sweep", sweep, "--root", "a/b/store", "--workers", 1, "--quiet"))
    assert "name" in line and repr(name) in line
    assert files_under(tmp_path) == ["t.yaml"]   # nothing trained, nothing written


def test_an_experiment_key_that_is_not_a_plain_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(yaml.safe_dump(EXPERIMENTS))
    raw["experiments"] = {"../../../../x": raw["experiments"]["A1"]}
    path = write_yaml(tmp_path / "x.yaml", raw)
    line = one_line_error(cli("reproduce", path, "--out", "r1/a/b/res", "--quiet"))
    assert "'../../../../x'" in line
    assert files_under(tmp_path) == ["x.yaml"]


# ------------------------------------------------------------------------------ item 2: alias bomb
def laughs(levels=9, width=10):
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nmodel: {{m: 4}}\nunknown: *a{levels - 1}\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs())
    start = time.perf_counter()
    line = one_line_error(cli("train", "-c", path, "--quiet", "--out", tmp_path / "runs"))
    assert time.perf_counter() - start < 5
    assert "alias" in line and "laughs.yaml" in line
    for kind in ("sweep", "reproduce"):
        start = time.perf_counter()
        one_line_error(cli(kind, path, "--quiet"))
        assert time.perf_counter() - start < 5


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("model: {m: 4}\nloop: &a [*a]\n")
    with pytest.raises(ConfigError, match="alias"):
        load_config(path)


def test_anchors_and_aliases_of_a_normal_size_still_work(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("data: &d {n: 40, K: 64, T: 4, d: 3}\nmodel: {m: 4}\ntrain: {steps: 5}\n"
                    "diagnostics: {record: {}}\n")
    assert load_config(path).data.n == 40


# ------------------------------------------------------------------------ item 5: a user's mistakes
def test_binary_garbage_as_a_config_sweep_or_experiment_file(tmp_path):
    path = tmp_path / "garbage.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    for args in (["train", "-c", path], ["sweep", path], ["reproduce", path]):
        line = one_line_error(cli(*args, "--quiet"))
        assert "garbage.yaml" in line and "UTF-8" in line


def test_a_list_nested_100000_deep(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("model: " + "[" * 100_000 + "]" * 100_000 + "\n")
    for args in (["train", "-c", path], ["sweep", path]):
        line = one_line_error(cli(*args, "--quiet"))
        assert "deep" in line


def test_a_validation_share_that_leaves_no_training_sample(tmp_path):
    line = one_line_error(cli("train", *TINY_FLAGS, "--set", "data.val_fraction=0.999", "--out", tmp_path))
    assert "data.val_fraction = 0.999" in line and "no training sample" in line
    assert not (tmp_path / "runs").exists()


def test_a_seed_too_large_for_the_table_is_refused_before_training(tmp_path):
    sweep = write_yaml(tmp_path / "s.yaml", {"base": TINY, "seeds": [0, 100000000000000000000000]})
    line = one_line_error(cli("sweep", sweep, "--root", tmp_path / "runs", "--workers", 1, "--quiet"))
    assert "seed" in line and "100000000000000000000000" in line
    assert not (tmp_path / "runs").exists()


def test_an_unknown_experiment_key_in_a_dry_run():
    line = one_line_error(cli("reproduce", "arda2026", "-e", "E99", "--dry-run"))
    assert "'E99'" in line and "E1" in line


@pytest.mark.parametrize("x", ["seed", "model.activation"])
def test_an_experiment_whose_x_is_not_a_numeric_field_is_refused_before_training(tmp_path, x):
    raw = yaml.safe_load(yaml.safe_dump(EXPERIMENTS))
    raw["experiments"]["A1"]["x"] = x
    path = write_yaml(tmp_path / "x.yaml", raw)
    line = one_line_error(cli("reproduce", path, "--out", tmp_path / "res", "--quiet"))
    assert f"A1.x = {x!r}" in line
    assert not (tmp_path / "res" / "runs").exists() or not any((tmp_path / "res" / "runs").iterdir())


# -------------------------------------------------------------------------------- item 8: huge grid
def test_a_huge_grid_is_refused_at_once():
    axes = {f"model.m": list(range(2, 2 * 2000 + 2, 2)), "seed": list(range(1000)),
            "data.n": list(range(40, 140))}
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"200000000 runs.*{MAX_RUNS}"):
        expand(parse_sweep({"base": TINY, "axes": axes}))
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------------------- item 10: --m and --set
def test_a_width_flag_survives_a_model_set_by_name(tmp_path):
    result = cli("train", *TINY_FLAGS, "--set", "model=indrnn", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert stored["model"]["name"] == "indrnn" and stored["model"]["m"] == 4


# ----------------------------------------------------------------------------------------- low ones
def test_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model: {m: 4}\ntrain: {steps: 5}\nmodel: {m: 8}\n")
    with pytest.raises(ConfigError, match="'model'.*twice|duplicate"):
        load_config(path)


@pytest.mark.parametrize("device", ["cudaXYZ", "cuda:", "cuda:x", "tpu", "CPU"])
def test_a_malformed_device_is_refused(device):
    with pytest.raises(ConfigError, match="device"):
        parse_config({"device": device})


def test_well_formed_devices_pass():
    for device in ("cpu", "cuda", "cuda:0", "cuda:12"):
        assert parse_config({"device": device}).device == device


@pytest.mark.parametrize("flag", ["--workers", "--threads"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_workers_and_threads_below_one_exit_2(tmp_path, flag, value):
    sweep = write_yaml(tmp_path / "s.yaml", {"base": TINY})
    line = one_line_error(cli("sweep", sweep, "--root", tmp_path / "runs", flag, value, "--quiet"))
    assert flag in line


def test_negative_retries_are_refused(tmp_path):
    sweep = write_yaml(tmp_path / "s.yaml", {"base": TINY})
    line = one_line_error(cli("sweep", sweep, "--root", tmp_path / "runs", "--retries", "-1", "--quiet"))
    assert "--retries" in line


def test_a_batch_larger_than_the_training_set_is_refused():
    with pytest.raises(ConfigError, match="train.batch_size = 1000000000.*32"):
        parse_config({**TINY, "train": {"method": "projsgd", "batch_size": 1_000_000_000}})
    parse_config({**TINY, "train": {"method": "projsgd", "batch_size": 32}})


def test_out_pointing_at_a_file_names_it(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    line = one_line_error(cli("train", *TINY_FLAGS, "--out", target))
    assert "not a directory" in line and "File exists" not in line


def test_a_claim_between_one_value_twice_is_refused():
    from attnlab.experiments.claims import parse_claim

    with pytest.raises(ValueError, match="between"):
        parse_claim({"metric": "m", "quantity": "q", "between": (4, 4), "at_least": 1.0})


def test_a_claim_on_a_string_metric_is_refused_before_training(tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(EXPERIMENTS))
    raw["experiments"]["A1"]["claims"][0]["metric"] = "task"
    path = write_yaml(tmp_path / "s.yaml", raw)
    line = one_line_error(cli("reproduce", path, "--out", tmp_path / "res", "--quiet"))
    assert "A1.claims.0.metric = 'task'" in line and "numeric" in line


def test_a_results_table_without_the_columns_of_one_is_refused(tmp_path):
    import pandas as pd

    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_parquet(tmp_path / "t.parquet")
    line = one_line_error(cli("report", tmp_path / "t.parquet", "--out", tmp_path / "r"))
    assert "run_id" in line and "status" in line
    assert not (tmp_path / "r").exists()


def test_markdown_report_does_not_carry_raw_html(tmp_path):
    import pandas as pd

    from attnlab.report import write_report
    from attnlab.report.result import ExperimentResult

    result = ExperimentResult(key="X1", title="<script>alert(1)</script>", table=pd.DataFrame({"a": ["<b>x</b>"]}),
                              verdicts=[], figures=[], config={}, notes="<img src=x onerror=alert(1)> m <= 1")
    write_report([result], tmp_path, title="<script>t</script>")
    text = (tmp_path / "report.md").read_text()
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "m <= 1" in text


def test_no_validation_sample_is_said_beside_the_nan(tmp_path):
    result = cli("train", "--m", "4", "--n", "2", "--K", "64", "--T", "4", "--d", "3", "--steps", "3", "--quiet",
                 "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "no validation samples" in result.output
