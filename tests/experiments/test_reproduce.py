"""Experiments declared as data, and `attnlab reproduce` end to end on a tiny experiment file."""

import math
import shutil

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import attnlab.run
from attnlab.cli import app
from attnlab.config import ConfigError
from attnlab.experiments.reproduce import PAPERS, experiment_configs, experiment_file, reproduce
from attnlab.experiments.spec import load_experiments, log_width, sweeps

TINY = {
    "paper": "a tiny test paper",
    "title": "Tiny",
    "experiments": {
        "A1": {
            "title": "approximation error against width",
            "claim": "falls like m^-1/2",
            "base": {"task": "approximation-error", "dtype": "float64",
                     "data": {"n": 60, "T": 4, "d": 3, "K": 512, "anchors": 4}},
            "x": "model.m",
            "claims": [{"metric": "approximation_error", "quantity": "approximation error", "predicted": -0.5}],
            "presets": {"quick": {"axes": {"model.m": [4, 16, 64]}, "seeds": 3}},
        },
        "A2": {
            "title": "training against sample size",
            "claim": "flat with log width",
            "base": {"data": {"T": 3, "d": 3, "K": 32, "anchors": 4},
                     "train": {"steps": 5, "reference": {"max_steps": 5}}, "diagnostics": {"record": {"smoothness": 5}}},
            "x": "data.n",
            "series": {"log-width": {"log_width": 1}, "fixed-width": {"base": {"model": {"m": 2}}}},
            "claims": [{"metric": "best.train_loss", "quantity": "minimum training loss",
                        "predicted": {"log-width": 0.0}},
                       {"metric": "train_loss", "source": "curves", "fit": "exp", "quantity": "training loss"},
                       {"metric": "last.train_loss", "quantity": "final loss", "order": ["log-width", "fixed-width"]},
                       {"metric": "last.train_loss", "quantity": "final loss", "order": ["log-width", "fixed-width"],
                        "at": 80},
                       {"metric": "last.train_loss", "quantity": "final loss", "between": ["smallest", 80],
                        "at_most": {"log-width": 100.0}},
                       {"metric": "best.train_loss", "quantity": "minimum loss", "at": "largest", "at_least": 0.0,
                        "level": {"value": 0.5, "label": "half"}},
                       {"metric": "gap.relative", "quantity": "optimisation gap", "does_not": {"log-width": "grow"},
                        "tolerance": 0.05, "prediction": {"log-width": "bound independent of n"}},
                       {"metric": "max.output_grad_norm", "quantity": "output gradient", "series": ["log-width"],
                        "does_not": "grow", "tolerance": 0.1, "bound_metric": "max.output_grad_bound"},
                       {"metric": "max.output_grad_ratio", "quantity": "gradient over bound", "every_at_most": 1.0}],
            "panels": [{"quantity": "iterates", "metrics": {"best": "best.train_loss", "last": "last.train_loss"}}],
            "presets": {"quick": {"axes": {"data.n": [20, 40, 80]}, "seeds": 2}},
        },
    },
}


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.mark.parametrize("paper", list(PAPERS))
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_every_declared_experiment_expands_into_valid_runs(paper, preset):
    declared = experiment_file(paper)
    for key, experiment in declared.experiments.items():
        configs = experiment_configs(key, experiment, preset)
        runs = [c for cs in configs.values() for c in cs]
        assert runs and len({c.model_dump_json() for c in runs}) == len(runs)
        deterministic = runs[0].task == "peak-memory"          # memory does not depend on the seed
        assert len({c.seed for c in runs}) >= (2 if preset == "quick" or deterministic else 5)


def test_arda2026_paper_preset_has_the_papers_sizes():
    declared = experiment_file("arda2026")
    e3 = experiment_configs("E3", declared.experiments["E3"], "paper")[""]
    assert sorted({c.model.m for c in e3}) == [8, 16, 32, 64, 128, 256] and len(e3) == 60
    assert {(c.data.n, c.data.T, c.data.d, c.train.steps, c.train.radius.w) for c in e3} == {(5000, 16, 8, 4000, 3.0)}
    e5 = experiment_configs("E5", declared.experiments["E5"], "paper")[""]
    assert max(c.data.T for c in e5) == 1024


def test_log_width_series_zips_an_even_width_to_each_sample_size():
    declared = experiment_file("arda2026")
    configs = experiment_configs("E6", declared.experiments["E6"], "paper")
    pairs = {(c.data.n, c.model.m) for c in configs["log-width"]}
    assert pairs == {(n, 2 * math.ceil(4 * math.log(n) / 2)) for n in (250, 500, 1000, 2000, 4000, 8000, 16000)}
    assert all(m % 2 == 0 for _, m in pairs)
    assert {c.model.m for c in configs["fixed-width"]} == {8}
    assert log_width(1000, 2) == 14


def test_bad_experiment_files_and_names_are_refused(tmp_path, tiny_file):
    broken = dict(TINY, experiments={"A1": {**TINY["experiments"]["A1"], "claims": []}})
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError, match="experiments.A1.claims"):
        load_experiments(path)
    for claim, problem in [({"between": [20, 80]}, "between: give at_least or at_most"),
                           ({"at_least": 1.0}, "need exactly one of at"),
                           ({"at": 20}, "at: give at_least"),
                           ({"at": 20, "at_least": 1.0, "predicted": 0.5}, "takes no predicted"),
                           ({"tolerance": 0.1}, "tolerance: needs predicted"),
                           ({"does_not": "grow"}, "does_not: needs a tolerance"),
                           ({"does_not": "grow", "tolerance": 0.1, "direction": "negative"}, "does_not judges"),
                           ({"every_at_most": 1.0, "predicted": 0.0}, "claim of kind 'every' takes no predicted")]:
        bad = dict(TINY, experiments={"A1": {**TINY["experiments"]["A1"],
                                             "claims": [{"metric": "e", "quantity": "e", **claim}]}})
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=problem):
            load_experiments(path)
    for claim, problem in [({"at": 48, "at_least": 1.0}, "model.m = 48 is not swept by preset quick"),
                           ({"predicted": {"wide": 0.5}}, r"\['wide'\] are not series of A1"),
                           ({"series": ["wide"]}, r"series: \['wide'\] are not series of A1")]:
        bad = {**TINY["experiments"]["A1"], "claims": [{"metric": "e", "quantity": "e", **claim}]}
        with pytest.raises(ConfigError, match=problem):
            sweeps("A1", load_experiments(tiny_file).experiments["A1"].model_validate(bad), "quick")
    with pytest.raises(ConfigError, match="paper = 'nope'"):
        experiment_file("nope")
    with pytest.raises(ConfigError, match="preset = 'paper'"):
        sweeps("A1", load_experiments(tiny_file).experiments["A1"], "paper")
    result = CliRunner().invoke(app, ["reproduce", str(tiny_file), "-e", "Z9", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "experiment = 'Z9'" in result.output
    result = CliRunner().invoke(app, ["reproduce", "arda2026", "--preset", "huge", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--preset 'huge'" in result.output


def test_reproduce_writes_tables_figures_verdicts_and_reuses_runs(tmp_path, tiny_file, monkeypatch):
    done = reproduce(str(tiny_file), out=tmp_path, progress=False)
    folder = tmp_path / "tiny" / "quick"
    assert done.report == folder / "report.html" and (folder / "report.md").exists()
    a1 = pd.read_parquet(folder / "A1" / "results.parquet")
    assert len(a1) == 9 and (a1["status"] == "done").all() and (a1["approximation_error"] > 0).all()
    a2 = pd.read_csv(folder / "A2" / "results.csv")
    assert set(a2["series"]) == {"log-width", "fixed-width"} and len(a2) == 12
    texts = [v.text for r in done.results for v in r.verdicts]
    assert texts[0].startswith("A1 approximation error ~ m^")
    assert any(t.startswith("A2 minimum training loss (series=log-width)") for t in texts)
    assert any(t.startswith("A2 training loss (series=log-width, n=40) ~ exp(") for t in texts)  # curves
    assert any(t.startswith("A2 final loss: log-width") for t in texts)                  # an ordering
    assert any(t.startswith("A2 final loss at n=80: log-width") for t in texts)         # ... at one n
    assert any(t.startswith("A2 final loss ratio n=80 / n=20 (series=log-width): ") for t in texts)
    assert any(t.startswith("A2 final loss ratio n=80 / n=20 (series=fixed-width): ") and "with" not in t
               for t in texts)                                                        # no bound: measured
    assert any(t.startswith("A2 minimum loss at n=80 (series=fixed-width): ") and t.endswith("consistent with >= 0")
               for t in texts)
    assert all(f.exists() for r in done.results for f in r.figures)
    gap = next(v for r in done.results for v in r.verdicts if v.claim == "A2 optimisation gap (series=log-width)")
    assert gap.prediction == "bound independent of n (slope < +0.05)" and gap.status in {
        "consistent", "inconsistent", "inconclusive"}
    assert any(t.startswith("A2 optimisation gap (series=fixed-width) ~ n^") and "with" not in t for t in texts)
    assert not any(t.startswith("A2 output gradient (series=fixed-width)") for t in texts)   # series: log-width
    ratio = [v for r in done.results for v in r.verdicts if v.claim.startswith("A2 gradient over bound")]
    assert [v.status for v in ratio] == ["consistent", "consistent"]
    names = {f.name for r in done.results for f in r.figures}
    assert {"A2_iterates_vs_data_n.png", "A2_max_output_grad_norm_vs_data_n_log_width.png"} <= names
    assert {"gap.relative", "max.output_grad_bound", "last.train_loss"} <= set(a2.columns)

    calls = []
    monkeypatch.setattr(attnlab.run, "setup", lambda *a, **k: calls.append(a) or pytest.fail("trained again"))
    monkeypatch.setattr(attnlab.run, "measure", lambda *a, **k: calls.append(a) or pytest.fail("measured again"))
    again = CliRunner().invoke(app, ["reproduce", str(tiny_file), "--out", str(tmp_path), "--quiet"])
    assert again.exit_code == 0, again.output
    assert calls == []
    assert texts[0] in again.output
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "A1" / "results.parquet"), a1)


def test_stored_only_reports_the_runs_in_the_store_and_trains_nothing(tmp_path, tiny_file, monkeypatch):
    full = reproduce(str(tiny_file), experiments=["A1"], out=tmp_path, progress=False)
    assert full.pending == 0 and "partial" not in full.report.read_text()
    store = attnlab.run.open_store(tmp_path / "runs")
    removed = [c for c in experiment_configs("A1", experiment_file(str(tiny_file)).experiments["A1"], "quick")[""]
               if c.model.m == 64]
    for config in removed:
        shutil.rmtree(store.path(config))
    monkeypatch.setattr(attnlab.run, "measure", lambda *a, **k: pytest.fail("measured with --stored-only"))
    result = CliRunner().invoke(app, ["reproduce", str(tiny_file), "-e", "A1", "--out", str(tmp_path), "--quiet",
                                      "--stored-only"])
    assert result.exit_code == 0, result.output
    assert "partial: 3 of 9 runs are not in the store" in result.output
    assert not any(store.path(c).exists() for c in removed)
    table = pd.read_parquet(tmp_path / "tiny" / "quick" / "A1" / "results.parquet")
    assert sorted(table.loc[table["status"] == "pending", "model.m"]) == [64, 64, 64]
    report = (tmp_path / "tiny" / "quick" / "report.md").read_text()
    assert "partial: 3 of 9 runs not in the store" in report
    assert "3 of 9 runs are not in the store (status pending; m = 64)" in report
    assert "A1 approximation error ~ m^" in result.output   # judged on m = 4 and 16
    refused = CliRunner().invoke(app, ["reproduce", str(tiny_file), "--stored-only", "--dry-run"])
    assert refused.exit_code == 2 and "give one" in refused.output


def test_runs_are_trained_smallest_x_first_every_series_at_each_x(tmp_path, tiny_file, monkeypatch):
    import attnlab.experiments.reproduce as module

    orders = []

    def record(configs, *args, **kwargs):
        orders.append([(c.data.n, c.model.m) for c in configs])
        raise KeyboardInterrupt   # stop before training anything

    monkeypatch.setattr(module, "run_sweep", record)
    with pytest.raises(KeyboardInterrupt):
        reproduce(str(tiny_file), experiments=["A2"], out=tmp_path, progress=False)
    (order,) = orders
    assert [n for n, _ in order] == sorted(n for n, _ in order)
    assert len({m for n, m in order if n == 20}) == 2   # both series at n = 20 before n = 40
