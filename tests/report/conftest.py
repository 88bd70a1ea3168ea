"""Shared tables and reports for the report tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from report_tables import power_rows

import dataclasses

from attnlab.report import ExperimentResult, SlopePrediction, interval_verdict, scaling_experiment


@pytest.fixture(scope="session")
def small_results(tmp_path_factory) -> list[ExperimentResult]:
    """Two experiments: a true claim (m^-1/2) and a false one (predicted m^-1 on m^-1/2 data)."""
    tmp_path = tmp_path_factory.mktemp("small_results")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(power_rows(rng, -0.5))
    good = scaling_experiment("E1", "approximation error", table, "m", "error",
                              predictions=SlopePrediction(slope=-0.5), figure_dir=tmp_path / "figures", n_boot=300)
    good = dataclasses.replace(good, claim="error decays as m^-1/2", paper="Test paper, Thm 1",
                               config={"model": {"m": [8, 128]}}, command="attnlab reproduce test")
    bad = scaling_experiment("E2", "approximation error", table, "m", "error",
                             predictions=SlopePrediction(slope=-1.0), figure_dir=tmp_path / "figures", n_boot=300)
    bad = dataclasses.replace(bad, claim="error decays as m^-1")
    bad.verdicts.append(interval_verdict("E2 ratio", 1.0, math.nan, math.nan, measured="1.0 [no interval]",
                                         prediction="1", predicted=1.0))
    return [good, bad]  # shared by several tests: do not mutate
