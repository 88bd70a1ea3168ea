"""`attnlab reproduce --dry-run`: the plan of a reproduction, with nothing run or written."""

import yaml
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.experiments.plan import describe, plan, run_size
from attnlab.experiments.reproduce import experiment_configs, experiment_file, reproduce

from tests.experiments.test_reproduce import TINY


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["reproduce", str(path), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "A1: 9 runs to do (0 training steps), 0 to reuse" in result.output
    assert "A2: 12 runs to do (60 training steps), 0 to reuse" in result.output
    assert "ms/step" in result.output and "s per measurement" in result.output
    assert "estimated wall time" in result.output
    assert not out.exists()


def test_the_plan_counts_finished_runs_as_reused(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    reproduce(str(path), ["A1"], out=tmp_path, progress=False)
    plans = plan(str(path), None, "quick", tmp_path)
    assert [(p.key, len(p.todo), p.reused) for p in plans] == [("A1", 0, 9), ("A2", 12, 0)]
    assert plans[0].seconds == 0 and plans[1].seconds > 0
    lines = describe("tiny", "quick", plans, workers=2)
    assert "A1: 0 runs to do (0 training steps), 9 to reuse" in lines[1]


def test_run_size_grows_with_samples_length_and_width():
    experiment = experiment_file("arda2026").experiments["E3"]
    configs = [c for cs in experiment_configs("E3", experiment, "paper").values() for c in cs]
    sizes = sorted({run_size(c) for c in configs})
    assert sizes[0] == 4000 * 16 * 8 and sizes[-1] == 4000 * 16 * 256
