"""`attnlab report SWEEP_DIR`: a report from run directories or results.parquet, CLI errors."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from report_tables import write_runs
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.report.sweep_report import NoRunsError, load_sweep_table, report_sweep, varied_axes


def test_sweep_report_from_run_directories(tmp_path):
    write_runs(tmp_path / "sweep")
    table = load_sweep_table(tmp_path / "sweep")
    assert len(table) == 9 and varied_axes(table) == ["model.m"]
    path = report_sweep(tmp_path / "sweep", metrics=["best.train_loss"], n_boot=200)
    assert path == tmp_path / "sweep" / "report" / "report.html"
    text = path.read_text()
    assert 'id="verdict-table"' in text and re.search(r"best.train_loss against m ~ m\^-[01]\.\d\d \[", text)
    assert text.count('<img src="data:image/png;base64,') == 1
    fits = pd.read_csv(path.parent / "fits.csv")
    assert fits["slope"].iloc[0] == pytest.approx(-1.0, abs=0.15) and fits["ci_low"].iloc[0] < -0.8
    assert (path.parent / "figures" / "best_train_loss_vs_model_m.pdf").is_file()


def test_sweep_report_from_results_parquet_groups_other_axes(tmp_path):
    rows = [{"run_id": f"r{m}{T}{s}", "status": "complete", "model.m": m, "data.T": T, "seed": s,
             "best.train_loss": T / m * (1 + 0.01 * s)} for m in (4, 8, 16) for T in (2, 4) for s in range(2)]
    (tmp_path / "sweep").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "sweep" / "results.parquet")
    path = report_sweep(tmp_path / "sweep" / "results.parquet", out_dir=tmp_path / "rep", x=["model.m"], n_boot=100)
    text = path.read_text()
    assert "best.train_loss against m (T=2)" in text and "best.train_loss against m (T=4)" in text
    assert "Runs by status: 12 complete." in text


def test_cli_report_writes_and_fails_clearly(tmp_path):
    write_runs(tmp_path / "sweep", widths=(4, 8), seeds=(0, 1))
    runner = CliRunner()
    done = runner.invoke(app, ["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "rep"),
                               "--y", "best.train_loss", "--n-boot", "100"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "report.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = runner.invoke(app, ["report", str(empty)])
    assert done.exit_code == 2 and "holds no runs" in done.output
    done = runner.invoke(app, ["report", str(tmp_path / "sweep"), "--y", "nonsense"])
    assert done.exit_code == 2 and "--y nonsense" in done.output
    with pytest.raises(NoRunsError):
        load_sweep_table(tmp_path / "missing")
