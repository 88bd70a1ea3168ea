"""`attnlab train` with the IndRNN, the lag-L task and recorded series."""

from __future__ import annotations

import yaml

from typer.testing import CliRunner

from attnlab.cli import app


def test_train_indrnn_on_ar_lag(tmp_path):
    result = CliRunner().invoke(app, ["train", "--model", "indrnn", "--data", "ar-lag", "--L", "3", "--n", "60",
                                      "--m", "8", "--gain", "1.0", "--method", "gd", "--lr", "0.05", "--steps",
                                      "3", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(next(tmp_path.glob("*/config.yaml")).read_text())
    assert config["model"]["gain"] == 1.0 and config["data"]["L"] == 3


def test_train_on_a_recorded_series(tmp_path):
    result = CliRunner().invoke(app, ["train", "--model", "indrnn", "--data", "series:sunspots", "--L", "4",
                                      "--m", "4", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(next(tmp_path.glob("*/config.yaml")).read_text())
    assert config["data"]["recording"] == "sunspots"


def test_unknown_recording_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", "series:moon", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert "data.recording" in result.output and "moon" in result.output


def test_peak_memory_task_prints_its_measurements(tmp_path):
    config = tmp_path / "memory.yaml"
    config.write_text(yaml.safe_dump({"task": "peak-memory", "model": {"name": "indrnn", "m": 4},
                                      "data": {"name": "ar-lag", "L": 3, "n": 20}}))
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "task peak-memory" in result.output and "train_step_bytes = " in result.output
