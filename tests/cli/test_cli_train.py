import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from attnlab.cli import app

TINY = ["--n", "40", "--K", "64", "--T", "4", "--d", "3", "--steps", "10", "--quiet"]


def invoke(args, tmp_path):
    return CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path / "runs")])


def test_flags_produce_a_complete_run_directory(tmp_path):
    result = invoke(["--m", "4", "--seed", "1", *TINY], tmp_path)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {p.name for p in run_dir.iterdir()} == {"config.yaml", "curves.parquet", "summary.json", "complete.json"}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["m"] == 4 and config["seed"] == 1 and config["train"]["steps"] == 10
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"last", "best", "average", "wall_time_s", "versions"} <= set(summary)
    assert summary["versions"]["torch"]
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert {"step", "train_loss", "val_loss", "grad_norm_W", "dist_W"} <= set(curves.columns)
    assert str(run_dir) in result.output


def test_config_file_and_flags_agree(tmp_path):
    config = {"model": {"name": "kernel-transformer", "m": 4}, "seed": 1,
              "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "train": {"steps": 10}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert invoke(["--config", str(path), "--quiet"], tmp_path).exit_code == 0
    assert invoke(["--m", "4", "--seed", "1", *TINY], tmp_path).exit_code == 0
    assert len(list((tmp_path / "runs").iterdir())) == 1  # same resolved config, same run


@pytest.mark.parametrize("args, field, value", [
    (["--m", "7"], "model.m", "7"),
    (["--m", "-4"], "model.m", "-4"),
    (["--activation", "relu"], "model.activation", "relu"),
    (["--radius", "-1"], "train.radius.c", "-1"),
    (["--set", "model.width=8"], "model.width", "8"),
    (["--set", "train.lr=-0.1"], "train.lr", "-0.1"),
    (["--dtype", "float16"], "dtype", "float16"),
])
def test_invalid_configs_exit_2_naming_field_and_value(tmp_path, args, field, value):
    result = invoke([*args, *TINY], tmp_path)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert field in lines[0] and value in lines[0]
    assert not (tmp_path / "runs").exists()


def test_unknown_field_lists_the_allowed_ones(tmp_path):
    result = invoke(["--set", "model.width=8", *TINY], tmp_path)
    assert "unknown field" in result.output and "allowed" in result.output and "activation" in result.output


def test_unreadable_config_file_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed")
    result = invoke(["--config", str(path)], tmp_path)
    assert result.exit_code == 2 and "bad.yaml" in result.output
