"""Means over seeds where a paper plots means (aggregate per claim), stacked figures of pooled block
statistics, and E4 / E4g judged from their experiment file on synthetic results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attnlab.config import ConfigError
from attnlab.experiments.reproduce import (check_claims_against_runs, experiment_configs, experiment_file,
                                          judge_experiment)
from attnlab.experiments.claims import parse_claim
from attnlab.experiments.spec import sweeps
from attnlab.report import stacked_figure
from attnlab.report.fit import fit_power_law
from attnlab.report.verdict import judge_order
from attnlab.run import open_store


def _skewed_table() -> pd.DataFrame:
    """Three runs per x: the means follow y = x^1 exactly, the medians x^0 (always 1)."""
    rows = []
    for x in (1.0, 2.0, 4.0, 8.0):
        for seed, y in enumerate((1.0, 1.0, 3 * x - 2)):
            rows.append({"x": x, "seed": seed, "y": y})
    return pd.DataFrame(rows)


def test_a_fit_on_means_fits_the_means_and_on_medians_the_medians():
    table = _skewed_table()
    on_means = fit_power_law(table, "x", "y", n_boot=200, aggregate="mean")
    on_medians = fit_power_law(table, "x", "y", n_boot=200)
    assert on_means.slope == pytest.approx(1.0) and on_means.aggregate == "mean"
    assert on_medians.slope == pytest.approx(0.0) and on_medians.aggregate == "median"
    with pytest.raises(ValueError, match="aggregate = 'mode'"):
        fit_power_law(table, "x", "y", aggregate="mode")


def test_an_ordering_on_means_compares_the_means():
    a = [1.0] * 20
    b = [0.5] * 15 + [20.0] * 5             # median 0.5 < 1 but mean 5.375 > 1
    table = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20, "y": a + b})
    assert judge_order("c", table, "g", "y", ["b", "a"], n_boot=400).status == "consistent"
    by_mean = judge_order("c", table, "g", "y", ["a", "b"], n_boot=400, aggregate="mean")
    assert by_mean.status == "consistent"
    assert by_mean.measured.startswith("means: a 1 ") and "b 5.38" in by_mean.measured


def test_a_claim_chooses_its_aggregate_and_a_bound_judges_means():
    assert parse_claim({"metric": "y", "quantity": "q"}).aggregate == "median"
    assert parse_claim({"metric": "y", "quantity": "q", "aggregate": "mean"}).aggregate == "mean"
    assert parse_claim({"metric": "y", "quantity": "q", "at": 4, "at_least": 1.0}).aggregate == "mean"
    with pytest.raises(ValueError, match="a bound .* judges the mean over seeds"):
        parse_claim({"metric": "y", "quantity": "q", "at": 4, "at_least": 1.0, "aggregate": "median"})
    with pytest.raises(ValueError, match="every_at_most judges every run"):
        parse_claim({"metric": "y", "quantity": "q", "every_at_most": 1.0, "aggregate": "mean"})


def _runs(rng: np.random.Generator) -> pd.DataFrame:
    """A synthetic E4 results table: per run the block statistics and the validation minimum."""
    rows = []
    for series, growth in (("indrnn", 1.0), ("transformer", 0.0)):
        for L in (4, 16, 72):
            for seed in range(4):
                maxima = (L ** growth) * rng.lognormal(-2, 0.3, size=10)
                rows.append({"run_id": f"{series}{L}{seed}", "status": "done", "series": series, "data.L": L,
                             "seed": seed, "sequence_grad_block_max.mean": maxima.mean(),
                             "sequence_grad_block_max.sd": maxima.std(ddof=1),
                             "sequence_grad_block_max.count": 10, "sequence_grad_norm": maxima.mean(),
                             "min_val_loss_trained": 0.3 + 0.01 * L * growth + 0.01 * seed})
    return pd.DataFrame(rows)


def test_the_stacked_figure_draws_pooled_blocks_and_seed_means(tmp_path):
    table = _runs(np.random.default_rng(0))
    result = stacked_figure("E4", "two panel", "the figure", table, "data.L",
                            [("gradient", "sequence_grad_block_max", True, True),
                             ("MSE", "min_val_loss_trained", False, True)],
                            figure_dir=tmp_path, hue="series", labels={"indrnn": "IndRNN"})
    assert [p.name for p in result.figures] == ["E4_two_panel.png"]
    assert (tmp_path / "E4_two_panel.pdf").stat().st_size > 0
    numbers = result.table.set_index(["quantity", "series", "data.L"])
    runs = table[(table.series == "indrnn") & (table["data.L"] == 16)]
    assert numbers.loc[("gradient", "IndRNN", 16), "mean"] == pytest.approx(runs["sequence_grad_block_max.mean"].mean())
    assert numbers.loc[("gradient", "IndRNN", 16), "n"] == 40             # 4 seeds x 10 blocks
    mse = runs["min_val_loss_trained"]
    half = 1.96 * mse.std(ddof=1) / 2
    assert numbers.loc[("MSE", "IndRNN", 16), "high"] == pytest.approx(mse.mean() + half)
    assert ("MSE", "transformer", 72) in numbers.index                   # unlabelled series: its name
    assert "gradient: IndRNN: L=4 " in result.notes
    with pytest.raises(ValueError, match=r"pooled 'min_val_loss_trained' needs the columns"):
        stacked_figure("E4", "bad", "t", table, "data.L", [("g", "min_val_loss_trained", True, True)],
                       figure_dir=tmp_path, hue="series")


class _NoCurves:
    def curves(self, config):   # E4 and E4g make no claim on curves
        raise AssertionError("no curve is read")


def test_e4_is_judged_on_the_block_statistic_and_draws_the_published_figure(tmp_path):
    declared = experiment_file("arda2026")
    experiment = declared.experiments["E4"]
    configs = experiment_configs("E4", experiment, "quick")
    result = judge_experiment("E4", experiment, _runs(np.random.default_rng(1)), tmp_path, "arda2026", "quick",
                              declared.paper, configs, _NoCurves())
    by_claim = {v.claim: v for v in result.verdicts}
    grows = by_claim["E4 gradient norm of the sequence weights (block maxima) (series=indrnn)"]
    assert grows.status == "consistent" and grows.prediction == "growing in L"
    assert by_claim["E4 gradient norm of the sequence weights (block maxima) ratio L=72 / L=4 (series=indrnn)"]
    windowed = [v for v in result.verdicts if "maxima per tenth" in v.claim]
    assert len(windowed) == 2 and all(v.status == "measured" and v.prediction == "—" for v in windowed)
    assert by_claim["E4 minimum validation MSE at L=4"].measured.startswith("means: ")
    names = {f.name for f in result.figures}
    assert "E4_published_two_panel.png" in names
    assert all(f.exists() and f.with_suffix(".pdf").exists() for f in result.figures)
    assert "Fitted on means over seeds" in result.notes


def test_e4g_reports_measurements_only(tmp_path):
    declared = experiment_file("arda2026")
    experiment = declared.experiments["E4g"]
    rng = np.random.default_rng(2)
    rows = [{"run_id": f"{s}{L}{seed}", "status": "done", "series": s, "data.L": L, "seed": seed,
             "grad_norms.init.total": rng.lognormal(), "grad_norms.steps_1_50.total": rng.lognormal(),
             "initial.train_loss": rng.lognormal(), "min_val_loss": rng.lognormal()}
            for s in ("indrnn", "transformer") for L in (4, 16, 96) for seed in range(3)]
    configs = experiment_configs("E4g", experiment, "quick")
    result = judge_experiment("E4g", experiment, pd.DataFrame(rows), tmp_path, "arda2026", "quick",
                              declared.paper, configs, _NoCurves())
    assert len(result.verdicts) == 8
    assert {v.status for v in result.verdicts} == {"measured"} and {v.prediction for v in result.verdicts} == {"—"}
    assert "published gradient panel" not in result.title
    assert "no verdict" in result.notes and "E4's block-maximum statistic" in result.notes


def test_figure_labels_must_name_series():
    declared = experiment_file("arda2026")
    experiment = declared.experiments["E4"]
    figure = experiment.figures[0].model_copy(update={"labels": {"lstm": "LSTM"}})
    bad = experiment.model_copy(update={"figures": [figure]})
    with pytest.raises(ConfigError, match=r"E4\.figures\.0\.labels: \['lstm'\] are not series of E4"):
        sweeps("E4", bad, "quick")


def test_a_figure_must_draw_what_the_runs_record(tmp_path):
    declared = experiment_file("arda2026")
    experiment = declared.experiments["E4"]
    configs = experiment_configs("E4", experiment, "quick")
    store = open_store(tmp_path / "runs")
    check_claims_against_runs("E4", experiment, configs, store)   # the declared figure is drawable
    row = experiment.figures[0].rows[0].model_copy(update={"metric": "sequence_grad_norm"})
    figure = experiment.figures[0].model_copy(update={"rows": [row]})
    bad = experiment.model_copy(update={"figures": [figure]})
    with pytest.raises(ConfigError, match=r"E4\.figures\.0\.rows\.0\.metric = 'sequence_grad_norm': these runs "
                                          r"do not record sequence_grad_norm\.mean, sequence_grad_norm\.sd"):
        check_claims_against_runs("E4", bad, configs, store)
