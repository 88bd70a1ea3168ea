"""The one bootstrap, the one band rule, and Status as a string in every output."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from attnlab.report import ExperimentResult, Status, Verdict, bootstrap
from attnlab.report.html import verdict_frame
from attnlab.report.verdict import band_status


def test_bootstrap_resamples_each_group_on_its_own():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([]), np.array([5.0])]
    samples = bootstrap(groups, np.mean, 200, rng_seed=3, stream="test")
    assert samples.shape == (3, 200)
    assert samples[0].min() >= 1.0 and samples[0].max() <= 3.0 and len(np.unique(samples[0])) > 3
    assert np.isnan(samples[1]).all() and (samples[2] == 5.0).all()
    np.testing.assert_array_equal(samples, bootstrap(groups, np.mean, 200, rng_seed=3, stream="test"))
    assert not np.array_equal(samples[0], bootstrap(groups, np.mean, 200, rng_seed=3, stream="other")[0])


@pytest.mark.parametrize("low, high, closed, status", [
    (0.1, 0.9, True, "consistent"), (0.0, 1.0, True, "consistent"), (0.0, 1.0, False, "inconclusive"),
    (1.5, 2.0, True, "inconsistent"), (-2.0, -0.1, False, "inconsistent"), (0.5, 1.5, True, "inconclusive")])
def test_band_status(low, high, closed, status):
    assert band_status(low, high, 0.0, 1.0, closed) == Status(status)


def test_status_is_its_string_in_text_tables_and_csv():
    verdict = Verdict("E1 error", "m^-1/2", "m^-0.5 [-0.6, -0.4]", "consistent")
    assert verdict.status is Status.CONSISTENT and verdict.status == "consistent"
    assert f"{verdict.status}" == str(verdict.status) == "consistent"
    assert verdict.text == "E1 error: m^-0.5 [-0.6, -0.4]: consistent with m^-1/2"
    csv = verdict_frame([ExperimentResult("E1", "t", pd.DataFrame(), verdicts=[verdict])]).to_csv(index=False)
    assert ",consistent," in csv and "Status" not in csv
    assert math.isnan(verdict.estimate)
    with pytest.raises(ValueError, match="status = 'great'"):
        Verdict("c", "p", "m", "great")
