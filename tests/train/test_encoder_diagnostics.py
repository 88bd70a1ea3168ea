"""Per-epoch diagnostics of the shallow encoder (spec shallow-encoder.md, section 3)."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import (DiagnosticsConfig, RandomSequencesConfig, RunConfig, ShallowEncoderConfig,
                            TrainConfig)
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model
from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.run import train
from attnlab.seeding import generator
from attnlab.ntk.drift import NTKRecorder
from attnlab.numerics.statistics import attention_statistics
from attnlab.train.diagnostics import FeatureRecorder, WeightChangeRecorder
from attnlab.train.recorders import build_recorders


def _inputs(n=6, T=4, d=5):
    X = torch.randn(n, T, d, generator=generator(0, "diag-inputs"), dtype=torch.float64)
    return X / X.norm(dim=-1, keepdim=True)


def test_weight_change_recorder_by_hand():
    p0 = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([1.0])}
    rec = WeightChangeRecorder(p0)
    first = rec(0, p0)
    assert first["rel_dist_a"] == 0 and math.isnan(first["rel_change_a"]) and math.isnan(first["rel_change_all"])
    p1 = {"a": torch.tensor([3.0, 4.0 + 5.0]), "b": torch.tensor([1.0])}
    row = rec(1, p1)
    assert row["rel_change_a"] == pytest.approx(1.0) and row["rel_dist_a"] == pytest.approx(1.0)
    assert row["rel_change_b"] == 0 and row["rel_dist_all"] == pytest.approx(5 / math.sqrt(26))
    p2 = {"a": torch.tensor([3.0, 9.0]), "b": torch.tensor([2.0])}
    row = rec(2, p2)
    assert row["rel_change_a"] == 0 and row["rel_change_b"] == pytest.approx(1.0)
    assert row["rel_change_all"] == pytest.approx(1 / math.sqrt(91))


def test_feature_recorder_alpha_accuracy_and_uniform_attention():
    X = _inputs()
    # p = 30: tau_0 = 7^-30, the attention is uniform to machine precision
    model = ShallowEncoder(d=5, T=4, d_m=7, scaling=30.0, outputs=3)
    params = model.init(seed=0, dtype=torch.float64)
    state = model.forward_state(params, X)
    y = torch.nn.functional.one_hot(state.f.argmax(1), 3).double()
    row = FeatureRecorder(model, X, y)(0, params)
    assert row["alpha"] == pytest.approx(float(torch.linalg.svdvals(state.r).min()), rel=1e-12)
    assert row["train_accuracy"] == 1.0
    assert row["attention_max_dev"] < 1e-12 and row["attention_mean_dev"] < 1e-12
    assert row["attention_entropy"] == pytest.approx(math.log(4), rel=1e-12)


def test_attention_statistics_one_hot_rows():
    S = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    stats = attention_statistics(torch.zeros(2, 3, 3, dtype=torch.float64), S)
    assert stats["attention_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert stats["attention_max_dev"] == pytest.approx(2 / 3) and stats["logit_std"] == 0
    assert stats["attention_mean_dev"] == pytest.approx((3 * 2 / 3 + 6 * 1 / 3) / 9)


def test_ntk_recorder_matches_model_ntk():
    X = _inputs()
    model = ShallowEncoder(d=5, T=4, d_m=16)
    params0 = model.init(seed=0, dtype=torch.float64)
    rec = NTKRecorder(model, X, params0)
    row = rec(0, params0)
    assert row["ntk_drift"] == 0
    assert row["ntk_lambda_min"] == pytest.approx(float(torch.linalg.eigvalsh(model.ntk(params0, X)).min()))
    moved = {k: v * 1.1 for k, v in params0.items()}
    assert rec(1, moved)["ntk_drift"] > 0


def test_build_recorders_rejects_models_without_features():
    class Plain(Model):
        name = "plain"
    X = _inputs()
    data = Dataset(X, torch.zeros(6), X[:0], torch.zeros(0))
    with pytest.raises(ValueError, match="diagnostics.record.ntk"):
        build_recorders(DiagnosticsConfig(record={"ntk": 1}), Plain(), {}, data)
    with pytest.raises(ValueError, match="diagnostics.record.attention"):
        build_recorders(DiagnosticsConfig(record={"attention": 1}), Plain(), {}, data)


def _config(**train):
    return RunConfig(model=ShallowEncoderConfig(d_m=8), data=RandomSequencesConfig(n=6, T=3, d=4),
                     train=TrainConfig(method="gd", steps=12, record_every=1, **train),
                     diagnostics=DiagnosticsConfig(record={"attention": 1, "weight_change": 1, "ntk": 5}), dtype="float64")


def test_train_records_every_diagnostic():
    result = train(_config(lr=1.0))
    curves = result.curves
    for column in ("train_loss", "alpha", "logit_std", "attention_entropy", "attention_max_dev",
                   "attention_mean_dev", "rel_change_W_Q", "rel_dist_w_O", "rel_dist_all", "ntk_lambda_min", "ntk_drift"):
        assert column in curves, column
    assert curves["ntk_lambda_min"].notna().sum() == 4          # steps 0, 5, 10 and the final 12
    assert curves["train_loss"].iloc[-1] < curves["train_loss"].iloc[0]
    assert result.summary["diverged_at"] is None


def test_divergence_is_recorded_not_raised():
    result = train(_config(lr=1e6))
    assert result.summary["diverged_at"] is not None
    assert result.summary["steps_run"] == result.summary["diverged_at"]
