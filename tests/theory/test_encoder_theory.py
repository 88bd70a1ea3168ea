"""Theory quantities of the shallow encoder against exact values and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.ntk.encoder_limit import infinite_width_ntk_blocks
from attnlab.seeding import generator
from attnlab.report.fit import fit_power_law
from attnlab.theory.encoder import (attention_at, feature_alpha, fit_contraction,
                                    lambda_0_monte_carlo, logit_variance, predicted_contraction,
                                    sampled_logit_variance)


def _inputs(n, T, d, scale=1.0, seed=0):
    X = torch.randn(n, T, d, generator=generator(seed, "theory-inputs"), dtype=torch.float64)
    return scale * X / X.norm(dim=-1, keepdim=True)


def test_fit_contraction_exact_and_noisy():
    steps = np.arange(0, 200, 5)
    exact = fit_contraction(3.0 * 0.97**steps, steps)
    assert exact.value == pytest.approx(0.97, rel=1e-12) and exact.r2 == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = 3.0 * 0.97**steps * np.exp(0.05 * rng.standard_normal(steps.size))
    fit = fit_contraction(np.append(noisy, np.nan), np.append(steps, 200), start=10)
    assert fit.low < 0.97 < fit.high and fit.points == steps.size - 2
    with pytest.raises(ValueError, match="at least 3"):
        fit_contraction([1.0, 0.5])


def test_fit_power_law_interval_contains_exponent():
    x = np.repeat([32, 64, 128, 256, 512, 1024], 4)
    seeds = np.tile(np.arange(4), 6)
    rng = np.random.default_rng(1)
    noisy = pd.DataFrame({"x": x, "seed": seeds, "y": 2.0 * x**-0.5 * np.exp(0.05 * rng.standard_normal(x.size))})
    fit = fit_power_law(noisy, "x", "y", n_boot=500)
    assert fit.ci_low < -0.5 < fit.ci_high
    exact = pd.DataFrame({"x": x, "seed": seeds, "y": 5.0 * x**1.5})
    assert fit_power_law(exact, "x", "y", n_boot=100).slope == pytest.approx(1.5)


def test_predicted_contraction():
    assert predicted_contraction(0.5, 1.0) == pytest.approx(1 - 0.125)
    assert predicted_contraction(0.5, 1.0, tau_1=0.5) == pytest.approx(1 - 0.125 / 4)


@pytest.mark.parametrize("init", ["lecun", "he", "ntk"])
@pytest.mark.parametrize("scaling", ["sqrt", "linear"])
def test_logit_variance_formula_matches_monte_carlo(init, scaling):
    model = ShallowEncoder(d=6, T=3, d_m=8, scaling=scaling, init=init)
    X = _inputs(2, 3, 6) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)[None, :, None]
    formula = logit_variance(model, X)
    measured, stderr = sampled_logit_variance(model, X, draws=2000, seed=1)
    z = (measured - formula) / stderr
    assert float(z.abs().max()) < 4.5, z


def test_lambda_0_tends_to_the_infinite_width_readout_kernel():
    # tau_0 = 1/d_m, NTK parameterisation: E[F F^T]/d_m -> the w_O block of the limiting NTK
    X = _inputs(5, 3, 4)
    model = ShallowEncoder(d=4, T=3, d_m=512, scaling="linear", init="ntk")
    estimate = lambda_0_monte_carlo(model, X, draws=16, seed=0, bootstrap=100)
    limit = float(torch.linalg.eigvalsh(infinite_width_ntk_blocks(X)["w_O"]).min())
    assert estimate.stderr > 0
    assert abs(estimate.value - limit) < 3 * estimate.stderr + 0.05 * limit, (estimate, limit)


def test_feature_alpha_and_attention_at():
    X = _inputs(4, 3, 5)
    model = ShallowEncoder(d=5, T=3, d_m=16)
    params = model.init(0, dtype=torch.float64)
    F = model.forward_state(params, X).r
    assert feature_alpha(model, params, X) == pytest.approx(float(torch.linalg.svdvals(F).min()))
    stats = attention_at(model, params, X)
    assert 0 < stats["attention_max_dev"] < 1 - 1 / 3 and stats["attention_entropy"] <= math.log(3)


def test_theory_beside_measurements_of_a_short_run():
    from attnlab.config import RandomSequencesConfig, RunConfig, ShallowEncoderConfig, TrainConfig
    from attnlab.run import setup, train
    from attnlab.theory.encoder import theory_beside_measurements
    config = RunConfig(model=ShallowEncoderConfig(d_m=64), data=RandomSequencesConfig(n=8, T=3, d=6),
                       train=TrainConfig(method="gd", steps=30, lr=1.0, record_every=1), dtype="float64")
    s, curves = setup(config), train(config).curves
    row = theory_beside_measurements(s.model, s.params0, s.data.X_train, curves["train_loss"],
                                     curves["step"], gamma=1.0, lambda_0_draws=4)
    assert 0 < row["fitted_factor"] < 1 and row["predicted_factor"] == row["predicted_factor_tau_1"]
    assert row["alpha_0_sq_over_d_m"] > 0 and row["lambda_0_stderr"] >= 0
    # unit-norm tokens: the formula is tau_0^2 d_m eta_Q eta_K = 1/d^2 for every logit
    assert row["logit_var_formula"] == pytest.approx(1 / 36)
    assert 0.3 < row["logit_var_measured"] / row["logit_var_formula"] < 3
