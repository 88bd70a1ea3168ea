"""Figures: seed statistics by hand, the fitted law on the plot, PNG + PDF written reproducibly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from attnlab.report import fit_power_law, new_figure, plot_curves, plot_scaling, save_figure, seed_statistics


def test_seed_statistics_by_hand():
    table = pd.DataFrame({"m": [1, 1, 1, 2, 2], "y": [1.0, 2.0, 6.0, 4.0, np.nan]})
    stats = seed_statistics(table, "m", "y")
    first = stats.iloc[0]
    assert (first["mean"], first["median"], first["n"], first["min"]) == (3.0, 2.0, 3, 1.0)
    half = 1.96 * math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2) / math.sqrt(3)
    assert (first["low"], first["high"]) == pytest.approx((3 - half, 3 + half))
    second = stats.iloc[1]  # the NaN run is left out; one run has a zero-width band
    assert second["n"] == 1 and second["low"] == second["high"] == 4.0


def test_scaling_plot_shows_mean_band_median_fit_and_exponent(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame([{"m": m, "seed": s, "y": m ** -0.5 * math.exp(0.1 * rng.standard_normal())}
                          for m in (4, 8, 16, 32) for s in range(3)])
    fit = fit_power_law(table, "m", "y", n_boot=200)
    fig, ax = new_figure()
    plot_scaling(table, "m", "y", fit=fit, ax=ax, label="error", reference=-0.5)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.collections) == 1  # the 95% band
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"{fit.slope:.2f}" in t and f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}]" in t for t in labels), labels
    assert any("theory" in t for t in labels)
    assert "3 seeds" in ax.get_legend().get_title().get_text()
    mean_line = ax.lines[0]
    assert np.allclose(mean_line.get_ydata(), seed_statistics(table, "m", "y")["mean"])
    png, pdf = save_figure(fig, tmp_path / "sub" / "e1")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    fig2, ax2 = new_figure()
    plot_scaling(table, "m", "y", fit=fit, ax=ax2, label="error", reference=-0.5)
    png2, _ = save_figure(fig2, tmp_path / "sub" / "e1_again")
    assert png2.read_bytes() == png.read_bytes()  # no timestamps: the same figure gives the same bytes
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary files left


def test_plot_errors_and_empty_data():
    table = pd.DataFrame({"m": [1, 2], "y": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="column 'width'"):
        plot_scaling(table, "width", "y")
    ax = plot_scaling(table, "m", "y")
    assert "no finite y" in ax.texts[0].get_text()


def test_curves_one_line_per_hue_value():
    table = pd.DataFrame([{"step": k, "seed": s, "model.m": m, "train_loss": math.exp(-k / m) + 0.01 * s}
                          for m in (4, 16) for s in range(2) for k in range(0, 50, 10)])
    ax = plot_curves(table, hue="model.m")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["m = 4", "m = 16"]
    with pytest.raises(ValueError, match="curves table"):
        plot_curves(table, hue="data.T")
