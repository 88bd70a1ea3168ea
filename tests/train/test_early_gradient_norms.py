"""Gradient norms at initialisation and over steps 1..50 (the published gradient panel, E4g)."""

from __future__ import annotations

import math

import pandas as pd
import torch

from attnlab.config import parse_config
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import setup, train
from attnlab.train.gradient_norms import early_gradient_norms


def test_init_and_early_means_per_block_and_total():
    curves = pd.DataFrame({"step": [0, 10, 20, 50, 60, 100],
                           "grad_norm_a": [3.0, 1.0, 2.0, 3.0, 100.0, math.nan],
                           "grad_norm_b": [4.0, 0.0, 0.0, 4.0, 100.0, math.nan]})
    norms = early_gradient_norms(curves, ("a", "b"))
    assert norms["init"] == {"a": 3.0, "b": 4.0, "total": 5.0}
    assert norms["steps_1_50"] == {"a": 2.0, "b": 4 / 3, "total": (1 + 2 + 5) / 3}
    assert early_gradient_norms(curves, ("a", "missing")) == {"init": {}, "steps_1_50": {}}


def test_trainer_summary_holds_the_full_batch_gradient_norms_of_the_iterates():
    config = parse_config({"model": {"name": "indrnn", "m": 8},
                           "data": {"name": "ar-lag", "L": 3, "n": 60, "context": "fixed", "T": 10,
                                    "coefficient": 0.999, "standardise_targets": False},
                           "train": {"method": "projgd", "lr": 0.05, "steps": 12, "radius": 3, "record_every": 10},
                           "dtype": "float64"})
    result = train(config)
    s = setup(config)
    _, grads = s.model.loss_and_grad(s.params0, s.data.X_train, s.data.y_train, "mse")
    at_init = result.summary["grad_norms"]["init"]
    for block in ("W_in", "u", "c"):
        assert math.isclose(at_init[block], float(grads[block].norm()), rel_tol=1e-9)
    total = math.sqrt(sum(float(g.norm()) ** 2 for g in grads.values()))
    assert math.isclose(at_init["total"], total, rel_tol=1e-9)
    assert math.isclose(result.summary["grad_norms"]["steps_1_50"]["total"],
                        float(result.curves.set_index("step").loc[10, ["grad_norm_W_in", "grad_norm_u",
                                                                     "grad_norm_c"]].pow(2).sum() ** 0.5))


def test_e4_and_e4g_paper_presets_follow_the_published_scripts():
    declared = experiment_file("arda2026")
    e4 = experiment_configs("E4", declared.experiments["E4"], "paper")
    for configs in e4.values():
        assert {(c.data.context, c.data.window - c.data.L, c.data.coefficient, c.data.standardise_targets,
                 c.data.n, c.model.m, c.train.method, c.train.lr, c.train.steps) for c in configs} == {
            ("matched", 1, 0.9, True, 5000, 64, "gd", 0.05, 5000)}
        assert sorted({c.data.L for c in configs}) == [4, 16, 72, 96] and len({c.seed for c in configs}) == 20
    e4g = experiment_configs("E4g", declared.experiments["E4g"], "paper")
    assert set(e4g) == {"indrnn", "transformer"}
    for configs in e4g.values():
        assert {(c.data.context, c.data.window, c.data.coefficient, c.data.standardise_targets,
                 c.data.noise_variance, c.model.m, c.train.method, c.train.radius.w, c.train.lr,
                 c.train.steps, c.train.record_interval) for c in configs} == {
            ("fixed", 128, 0.999, False, 0.1, 64, "projgd", 3.0, 0.05, 400, 10)}
    quick = experiment_configs("E4g", declared.experiments["E4g"], "quick")
    assert all(c.train.steps > 50 for cs in quick.values() for c in cs)   # steps 1..50 hold gradients
