"""The report: verdict table first, failed claims shown (never dropped), figures embedded, Markdown."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from report_tables import power_rows

from attnlab.report import (ExperimentResult, SlopePrediction, fit_power_law, judge, ordering_experiment, plot_groups,
                            scaling_experiment, write_report)
from attnlab.report.html import render_html, verdict_markdown


def test_scaling_experiment_judges_fits_and_plots(tmp_path):
    table = pd.DataFrame(power_rows(np.random.default_rng(1), -0.5))
    result = scaling_experiment("E1", "approximation error", table, "m", "error",
                                predictions=SlopePrediction(slope=-0.5), figure_dir=tmp_path, n_boot=300)
    (verdict,) = result.verdicts
    fit = fit_power_law(table, "m", "error", n_boot=300)
    assert verdict.status == "consistent" and verdict.estimate == fit.slope
    assert verdict.text == f"E1 approximation error ~ {fit.describe()}: consistent with m^-1/2"
    assert re.fullmatch(r"E1 approximation error ~ m\^-0\.\d\d \[-0\.\d\d, -0\.\d\d\]: consistent with m\^-1/2",
                        verdict.text), verdict.text
    assert result.figures == [tmp_path / "E1_error_vs_m.png"] and (tmp_path / "E1_error_vs_m.pdf").is_file()
    assert list(result.table["m"]) == [8, 16, 32, 64, 128] and set(result.table["runs"]) == {4}
    assert result.table["median error"].iloc[0] == pytest.approx(table[table.m == 8]["error"].median())


def test_scaling_experiment_wrong_prediction_is_inconsistent_for_every_series(tmp_path):
    rng = np.random.default_rng(2)
    table = pd.DataFrame(power_rows(rng, -0.5, T=4) + power_rows(rng, -0.5, T=16))
    result = scaling_experiment("E1", "error", table, "m", "error", predictions=SlopePrediction(slope=-1.0),
                                hue="T", figure_dir=tmp_path, n_boot=300)
    assert [v.claim for v in result.verdicts] == ["E1 error (T=4)", "E1 error (T=16)"]
    assert [v.status for v in result.verdicts] == ["inconsistent", "inconsistent"]
    assert all(v.text.endswith("inconsistent with m^-1") for v in result.verdicts)


def test_scaling_experiment_log_exp_direction_and_measurement(tmp_path):
    rng = np.random.default_rng(3)
    flat = pd.DataFrame([{"T": T, "seed": s, "loss": 0.2 + 0.02 * rng.standard_normal()}
                         for T in (4, 8, 16, 32) for s in range(4)])
    log = scaling_experiment("E5", "training loss", flat, "T", "loss", kind="log",
                             predictions=SlopePrediction(slope=0.0, text="flat in T"), figure_dir=tmp_path, n_boot=300)
    assert log.verdicts[0].status == "consistent" and "log T" in log.verdicts[0].measured
    curve = pd.DataFrame([{"step": k, "seed": s, "loss": math.exp(-0.05 * k + 0.05 * rng.standard_normal())}
                          for k in range(0, 100, 10) for s in range(3)])
    rate = scaling_experiment("E6", "training loss", curve, "step", "loss", kind="exp",
                              predictions=SlopePrediction(direction="negative"), figure_dir=tmp_path, n_boot=300)
    assert rate.verdicts[0].status == "consistent" and rate.verdicts[0].measured.startswith("exp(-0.05")
    plain = scaling_experiment("E7", "loss", curve, "step", "loss", kind="exp", figure_dir=tmp_path, n_boot=50)
    assert plain.verdicts[0].status == "measured"
    with pytest.raises(ValueError, match="column 'width'"):
        scaling_experiment("E8", "loss", curve, "width", "loss", figure_dir=tmp_path)


def test_report_shows_every_claim_with_status_and_embeds_figures(tmp_path, small_results):
    path = write_report(small_results, tmp_path / "out", title="Test report",
                        versions={"attnlab": "0.0-test", "torch": "2.x"})
    text = path.read_text()
    # the verdict table comes before any section, with one row per verdict, failures included
    table = text[text.index('id="verdict-table"'):text.index("</table>", text.index('id="verdict-table"'))]
    assert text.index('id="verdict-table"') < text.index('<section id="exp-E1">')
    rows = re.findall(r'<tr class="(\w+)">', table)
    assert rows == ["consistent", "inconsistent", "inconclusive"]
    assert "inconsistent with m^-1" in text and "error decays as m^-1/2" in text
    assert "1 consistent" in text and "1 inconsistent" in text and "1 inconclusive" in text
    # self-contained: figures as data URIs, no external resource
    images = re.findall(r'<img src="([^"]+)"', text)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "attnlab reproduce test" in text and "model:" in text and "0.0-test" in text
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| E2 | E2 approximation error |" in md and "**INCONSISTENT**" in md
    verdicts = pd.read_csv(tmp_path / "out" / "report_verdicts.csv")
    assert list(verdicts["status"]) == ["consistent", "inconsistent", "inconclusive"]
    assert list(verdicts["experiment"]) == ["E1", "E2", "E2"] and verdicts["text"][1].endswith("with m^-1")
    assert verdict_markdown(small_results) in md
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert {l.rsplit("/", 1)[-1] for l in links} >= {"E1_error_vs_m.png", "E1_error_vs_m.pdf"}
    assert all((tmp_path / "out" / link).is_file() for link in links)  # relative to the report


def test_report_input_errors(tmp_path, small_results):
    with pytest.raises(ValueError, match="unique"):
        write_report([small_results[0], small_results[0]], tmp_path, "t")
    missing = ExperimentResult("E9", "missing figure", pd.DataFrame(), figures=[tmp_path / "none.png"])
    with pytest.raises(FileNotFoundError, match="none.png"):
        write_report([missing], tmp_path, "t")
    with pytest.raises(TypeError, match="Verdict objects"):
        ExperimentResult("E9", "bad verdict", pd.DataFrame(), verdicts=["consistent"])
    with pytest.raises(TypeError, match="DataFrame"):
        ExperimentResult("E9", "bad table", [{"m": 1}])


def test_html_escapes_text_and_handles_empty_results():
    fit = fit_power_law(pd.DataFrame({"m": [1, 2], "seed": [0, 0], "y": [1.0, 0.5]}), "m", "y", n_boot=10)
    result = ExperimentResult("<E>", "a <b> title", pd.DataFrame(), verdicts=[judge("x<y", fit, -1.0)])
    text = render_html([result], "T & U", {"attnlab": "0"}, "now")
    assert "<b>" not in text and "a &lt;b&gt; title" in text and "T &amp; U" in text
    assert "No rows." in text and "inconclusive" in text
    assert "No claims judged." in render_html([], "empty", {}, "now")


def test_ordering_experiment_judges_and_plots(tmp_path):
    rng = np.random.default_rng(4)
    table = pd.DataFrame([{"init": g, "seed": s, "loss": mu * math.exp(0.2 * rng.standard_normal())}
                          for g, mu in {"He": 0.01, "LeCun": 0.03, "NTK": 0.1}.items() for s in range(5)])
    good = ordering_experiment("E7", "loss", table, "init", "loss", ["He", "LeCun", "NTK"],
                               figure_dir=tmp_path, n_boot=300)
    assert good.verdicts[0].status == "consistent" and good.figures == [tmp_path / "E7_loss_by_init.png"]
    assert list(good.table["init"]) == ["He", "LeCun", "NTK"] and set(good.table["runs"]) == {5}
    bad = ordering_experiment("E8", "loss", table, "init", "loss", ["NTK", "He"], figure_dir=tmp_path,
                              n_boot=300)
    assert bad.verdicts[0].status == "inconsistent"
    assert bad.verdicts[0].text.endswith("inconsistent with NTK < He by loss")
    ax = plot_groups(table, "init", "loss", order=["He", "Xavier"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["He", "Xavier"]
    assert any(t.get_text() == "no runs" for t in ax.texts)


def test_scaling_experiment_per_series_predictions(tmp_path):
    """'IndRNN gradients grow with the lag, the Transformer's do not': one claim per model."""
    rng = np.random.default_rng(5)
    rows = [{"model": name, "lag": lag, "seed": s, "grad": lag ** power * math.exp(0.1 * rng.standard_normal())}
            for name, power in (("indrnn", 1.0), ("transformer", 0.0)) for lag in (1, 2, 4, 8, 16)
            for s in range(3)]
    predictions = {"indrnn": SlopePrediction(direction="positive"),
                   "transformer": SlopePrediction(slope=0.0, text="flat in lag")}
    result = scaling_experiment("W3", "gradient norm", pd.DataFrame(rows), "lag", "grad", hue="model",
                                predictions=predictions, figure_dir=tmp_path, n_boot=300)
    assert [(v.claim, v.status) for v in result.verdicts] == [
        ("W3 gradient norm (model=indrnn)", "consistent"), ("W3 gradient norm (model=transformer)", "consistent")]
    assert result.verdicts[1].prediction == "flat in lag"
    with pytest.raises(ValueError, match=r"\['rnn'\] are not values of 'model'"):
        scaling_experiment("W3", "g", pd.DataFrame(rows), "lag", "grad", hue="model",
                           predictions={"rnn": SlopePrediction(direction="positive")}, figure_dir=tmp_path)
    with pytest.raises(ValueError, match="need hue"):
        scaling_experiment("W3", "g", pd.DataFrame(rows), "lag", "grad",
                           predictions={"indrnn": SlopePrediction(slope=1.0)}, figure_dir=tmp_path)
