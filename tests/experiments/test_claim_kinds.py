"""Claims as types: the kind read off the fields, one-line errors naming the field, each kind judged
on a small synthetic table, and a new kind as one class."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import TypeAdapter

from attnlab.config import ConfigError
from attnlab.experiments.claims import (CLAIM_KINDS, ClaimBase, EveryClaim, FitClaim, MeanClaim, OrderClaim,
                                        RatioClaim, Runs, claim_union, parse_claim)
from attnlab.experiments.spec import load_experiments, rebuild_claims
from attnlab.report import ExperimentResult, SlopePrediction, Status

FILE = {"paper": "p", "title": "t", "experiments": {"A1": {
    "title": "t", "claim": "c", "x": "data.L", "series": {"a": {}, "b": {}},
    "claims": [], "presets": {"quick": {"axes": {"data.L": [2, 4, 8, 16]}, "seeds": 3}}}}}


@pytest.mark.parametrize("fields, kind", [
    ({}, FitClaim), ({"predicted": -0.5}, FitClaim), ({"source": "curves", "fit": "exp"}, FitClaim),
    ({"order": ["a", "b"]}, OrderClaim), ({"order": ["a", "b"], "at": 4}, OrderClaim),
    ({"at": "largest", "at_least": 1.0}, MeanClaim), ({"between": [2, 16], "at_most": {"a": 2.0}}, RatioClaim),
    ({"every_at_most": 1.0}, EveryClaim), ({"kind": "mean", "at": 4, "at_most": 3.0}, MeanClaim)])
def test_the_kind_is_read_off_the_fields(fields, kind):
    claim = parse_claim({"metric": "y", "quantity": "q", **fields})
    assert type(claim) is kind and claim.kind == next(k for k, c in CLAIM_KINDS.items() if c is kind)


@pytest.mark.parametrize("fields, line", [
    ({"tolerance": 0.1}, "claims.0.tolerance: needs predicted"),
    ({"predicted": 0.0, "direction": "negative"},
     "claims.0.direction: give predicted (a slope) or direction (a sign), not both"),
    ({"tolerance": -1.0, "predicted": 0.0}, "claims.0.tolerance = -1.0: Input should be greater than 0"),
    ({"order": ["a"]}, "claims.0.order = ['a']: List should have at least 2 items"),
    ({"at": 4}, "claims.0.at: give at_least / at_most"),
    ({"at": 4, "at_least": 1.0, "fit": "exp"}, "claims.0.fit: a claim of kind 'mean' takes no fit"),
    ({"between": [4, 4], "at_least": 1.0}, "claims.0.between: [4.0, 4.0] names one x value twice"),
    ({"every_at_most": 1.0, "aggregate": "mean"}, "claims.0.aggregate: every_at_most judges every run"),
    ({"kind": "median"}, "claims.0.kind: 'median' is not a kind of claim (allowed: fit, order, mean, ratio, every)")])
def test_an_invalid_claim_is_one_line_naming_its_field(tmp_path, fields, line):
    raw = yaml.safe_load(yaml.safe_dump(FILE))
    raw["experiments"]["A1"]["claims"] = [{"metric": "y", "quantity": "q", **fields}]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_experiments(path)
    message = str(error.value)
    assert message.startswith(f"experiment file e.yaml: experiments.A1.{line}") and "\n" not in message


def test_a_fit_claim_gives_one_prediction_per_series():
    claim = parse_claim({"metric": "y", "quantity": "q", "direction": {"a": "positive"}, "does_not": {"b": "grow"},
                         "tolerance": 0.05, "prediction": {"b": "bounded"}})
    assert claim.prediction_for("a") == SlopePrediction(direction="positive", tolerance=0.05)
    assert claim.prediction_for("b") == SlopePrediction(does_not="grow", tolerance=0.05, text="bounded")
    assert claim.prediction_for("c") == SlopePrediction(tolerance=0.05)                 # a measurement
    plain = parse_claim({"metric": "y", "quantity": "q", "predicted": -0.5})
    assert plain.prediction_for(None) == plain.prediction_for("a") == SlopePrediction(slope=-0.5)


def _runs(tmp_path) -> Runs:
    """Series a grows like L, series b is flat; three seeds at each of four L."""
    rng = np.random.default_rng(0)
    rows = [{"run_id": f"{s}{L}{seed}", "status": "done", "series": s, "data.L": L, "seed": seed,
             "y": (L if s == "a" else 1.0) * math.exp(0.02 * rng.standard_normal())}
            for s in ("a", "b") for L in (2, 4, 8, 16) for seed in range(3)]
    return Runs("A1", pd.DataFrame(rows), "data.L", "series", tmp_path, curves=None)


@pytest.mark.parametrize("fields, statuses", [
    ({"direction": {"a": "positive"}, "does_not": {"b": "grow"}, "tolerance": 0.05}, ["consistent", "consistent"]),
    ({"predicted": 1.0, "tolerance": 0.1}, ["consistent", "inconsistent"]),
    ({"order": ["b", "a"], "at": 16}, ["consistent"]),
    ({"order": ["a", "b"]}, ["inconsistent"]),
    ({"at": "largest", "at_least": {"a": 10.0}, "at_most": {"b": 2.0}}, ["consistent", "consistent"]),
    ({"between": [2, 16], "at_least": 4.0}, ["consistent", "inconsistent"]),
    ({"every_at_most": 5.0}, ["inconsistent", "consistent"])])
def test_each_kind_judges_a_synthetic_table(tmp_path, fields, statuses):
    result = parse_claim({"metric": "y", "quantity": "y", **fields}).judge(_runs(tmp_path))
    assert isinstance(result, ExperimentResult)
    assert [v.status for v in result.verdicts] == [Status(s) for s in statuses]
    assert all(f.exists() for f in result.figures)


def test_a_new_kind_is_one_class(tmp_path):
    class MedianAbove(ClaimBase):
        kind: Literal["median-above"] = "median-above"
        floor: float

    raw = yaml.safe_load(yaml.safe_dump(FILE))
    raw["experiments"]["A1"]["claims"] = [{"kind": "median-above", "metric": "y", "quantity": "q", "floor": 1.0}]
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(raw))
    try:
        assert CLAIM_KINDS["median-above"] is MedianAbove
        claim = TypeAdapter(claim_union()).validate_python(raw["experiments"]["A1"]["claims"][0])
        assert isinstance(claim, MedianAbove) and claim.floor == 1.0
        rebuild_claims()
        (claim,) = load_experiments(tmp_path / "e.yaml").experiments["A1"].claims
        assert isinstance(claim, MedianAbove)
    finally:
        del CLAIM_KINDS["median-above"]
        rebuild_claims()
    with pytest.raises(ConfigError, match="'median-above' is not a kind of claim"):
        load_experiments(tmp_path / "e.yaml")
