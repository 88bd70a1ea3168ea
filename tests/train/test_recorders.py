"""The registry of named recorders: names, the results version, config requests by name, and the
ball-usage recorder against an independent computation."""

import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from attnlab.config import ConfigError, DiagnosticsConfig, RunConfig, identity_dict, parse_config, upgrade_stored
from attnlab.data.dataset import Dataset
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.models.indrnn import IndRNN
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.ntk import NTKDriftRecorder
from attnlab.ntk.drift import NTKRecorder
from attnlab.run import open_store, run_id, train
from attnlab.train.recorders import (CORE_VERSION, REGISTRY, RESULTS_VERSION, RecorderEntry, build_recorders,
                                     results_version)

from test_trainer import Snapshots

KT = {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3}, "dtype": "float64",
      "train": {"method": "projgd", "steps": 20, "lr": 2.0, "radius": 0.5, "record_every": 2}}


def _entry(name, version=1):
    return RecorderEntry(name, version, lambda context: None)


def test_registry_names_and_which_are_always_on():
    assert {"gradients", "sequence_gradient", "heads", "attention", "weight_change", "ntk", "smoothness",
            "full_gradient", "ball"} <= set(REGISTRY)
    assert {name for name, entry in REGISTRY.items() if entry.always} == {"gradients", "sequence_gradient", "heads"}
    assert all(name == entry.name and entry.version >= 1 for name, entry in REGISTRY.items())


def test_results_version_follows_the_entries():
    assert re.fullmatch("[0-9a-f]{8}", RESULTS_VERSION) and RESULTS_VERSION == results_version(REGISTRY)
    assert results_version(dict(reversed(list(REGISTRY.items())))) == RESULTS_VERSION   # order-free
    added = {**REGISTRY, "new": _entry("new")}
    bumped = {**REGISTRY, "ntk": RecorderEntry("ntk", REGISTRY["ntk"].version + 1, REGISTRY["ntk"].build)}
    versions = {RESULTS_VERSION, results_version(added), results_version(bumped),
                results_version(REGISTRY, core=CORE_VERSION + 1)}
    assert len(versions) == 4


def _kt_data():
    X = torch.randn(6, 4, 3, dtype=torch.float64)
    return KernelTransformer(d=3, m=4), Dataset(X, torch.zeros(6, dtype=torch.float64), X[:0], torch.zeros(0))


def test_unknown_recorder_names_give_the_field_the_value_and_the_allowed_names():
    model, data = _kt_data()
    params0 = model.init(0, dtype=torch.float64)
    allowed = "allowed names: attention, ball, block_max, full_gradient, ntk, smoothness, weight_change"
    with pytest.raises(ValueError, match=r"diagnostics\.record\.atention = 5: 'atention' is no recorder; " + allowed):
        build_recorders(DiagnosticsConfig(record={"atention": 5}), model, params0, data)
    with pytest.raises(ValueError, match=r"diagnostics\.record\.gradients = 1: 'gradients' is recorded for every run"):
        build_recorders(DiagnosticsConfig(record={"gradients": 1}), model, params0, data)
    with pytest.raises(ValueError, match=r"diagnostics\.record\.attention: model 'kernel-transformer'.*"
                                         r"remove diagnostics\.record\.attention"):
        build_recorders(DiagnosticsConfig(record={"attention": 2}), model, params0, data)


def test_recorders_are_asked_for_by_name_only():
    for old, new in (({"every": 2, "ntk_every": 3}, "record: {attention: 2, weight_change: 2, ntk: 3}"),
                     ({"smoothness_every": 400, "record": {"ball": 20}}, "record: {smoothness: 400, ball: 20}")):
        with pytest.raises(ConfigError) as error:
            parse_config({"diagnostics": old})
        assert str(error.value).count(";") == 0 and "replaced by record" in str(error.value)
        assert f"write diagnostics: {{{new}}}" in str(error.value)


def test_a_run_stored_in_the_older_spelling_keeps_its_id_and_is_reused(tmp_path):
    """The runs shipped under docs/paper before the rename wrote diagnostics.every / ntk_every / smoothness_every:
    their ids are the ids of the same configs asked for by name, and a store adopts them."""
    runs = sorted((Path(__file__).parents[2] / "docs" / "paper" / "arda2026" / "E4" / "runs").iterdir())
    older = [(run, yaml.safe_load((run / "config.yaml").read_text())) for run in runs]
    older = [(run, stored) for run, stored in older if "smoothness_every" in stored["diagnostics"]]
    assert older, "no packed run in the older spelling"
    packed, stored = older[0]
    config = parse_config(upgrade_stored(stored))
    shutil.copytree(packed, tmp_path / packed.name)
    assert open_store(tmp_path).is_complete(config) and run_id(config) == packed.name
    old = {"every": 10, "ntk_every": None, "ntk_samples": None, "smoothness_every": 30, "record": {"ball": 20}}
    new = {"record": {"attention": 10, "weight_change": 10, "smoothness": 30, "ball": 20}}
    assert identity_dict(parse_config({"diagnostics": new}))["diagnostics"] == old


@pytest.mark.parametrize("method", ["projgd", "gd"])
def test_ball_usage_is_the_farthest_head_over_its_radius(method):
    config = parse_config({**KT, "train": {**KT["train"], "method": method},
                           "diagnostics": {"record": {"ball": 2}}})
    snapshots = Snapshots()
    result = train(config, recorders=[snapshots])
    curves = result.curves.set_index("step")
    theta0, m = snapshots.iterates[0], config.model.m
    radius = {"W": config.train.radius.w / math.sqrt(m), "U": config.train.radius.u / math.sqrt(m),
              "c": config.train.radius.c / math.sqrt(m)}
    for step in range(0, config.train.steps, 2):
        for block, r in radius.items():
            distance = torch.stack([torch.linalg.vector_norm(snapshots.iterates[step][block][i] - theta0[block][i])
                                    for i in range(m)])
            assert curves.loc[step, f"ball_usage_{block}"] == pytest.approx(float(distance.max()) / r, rel=1e-12)
            on_boundary = sum(float(d) >= (1 - 1e-4) * r for d in distance) / m
            assert curves.loc[step, f"ball_boundary_{block}"] == on_boundary
    for block in radius:
        assert result.summary["max"][f"ball_usage_{block}"] == curves[f"ball_usage_{block}"].max()
    usage = result.summary["max"]["ball_usage_c"]
    if method == "projgd":   # the projection holds every head in its ball, and here it binds
        assert usage <= 1 + 1e-12 and result.summary["max"]["ball_boundary_c"] > 0
    else:                    # unprojected GD leaves the ball of the same radius
        assert usage > 1


def test_ball_usage_needs_a_ball():
    X = torch.randn(6, 3, 4, dtype=torch.float64)
    model = ShallowEncoder(d=4, T=3, d_m=8)
    data = Dataset(X, torch.zeros(6, dtype=torch.float64), X[:0], torch.zeros(0))
    with pytest.raises(ValueError, match=r"diagnostics\.record\.ball: no block has a ball"):
        build_recorders(DiagnosticsConfig(record={"ball": 1}), model, model.init(0, dtype=torch.float64), data)


def test_an_experiment_asks_for_the_ball_recorder_by_name():
    declared = experiment_file("arda2026")
    for config in experiment_configs("E5", declared.experiments["E5"], "quick")[""]:
        assert config.diagnostics.record == {"smoothness": 30, "ball": 20}
    w2 = experiment_configs("W2", experiment_file("wu2023").experiments["W2"], "quick")[""]
    assert all(c.diagnostics.record == {"weight_change": 1, "ntk": 10} for c in w2)


def test_one_ntk_drift_implementation_and_the_models_sequence_block():
    assert issubclass(NTKDriftRecorder, NTKRecorder) and "__call__" not in vars(NTKDriftRecorder)
    assert KernelTransformer.sequence_block == "W" and IndRNN.sequence_block == "u"
    assert ShallowEncoder.sequence_block is None
    assert isinstance(RunConfig().diagnostics.record, dict)


def test_configs_asking_for_recorders_by_name_stay_hashable():
    a = RunConfig(diagnostics=DiagnosticsConfig(record={"ball": 2, "ntk": 3}))
    b = RunConfig(diagnostics=DiagnosticsConfig(record={"ntk": 3, "ball": 2}))
    assert a == b and hash(a) == hash(b) and len({a, b, RunConfig()}) == 2
