"""Theory quantities of the shallow encoder, to print beside measurements (spec shallow-encoder.md, 4).

    fit_contraction          per-epoch contraction factor q of the loss, log loss_t ~ a + t log q
    predicted_contraction    the theorem's shape 1 - gamma tau_1^2 alpha_0^2 / 2
    feature_alpha            alpha = smallest singular value of the N x d_m features relu(h)
    lambda_0_monte_carlo     lambda_min(E[F F^T] / d_m) over initialisations, with a bootstrap error bar
    logit_variance           Var(L_ij) = tau_0^2 d_m eta_Q eta_K ||x_i||^2 ||x_j||^2 at initialisation
    sampled_logit_variance   the same measured over initialisations, with its sampling error
    attention_at             logit std, attention entropy and max |S_ij - 1/T| of one iterate
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from attnlab.models.base import Params
from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.numerics.statistics import attention_statistics, smallest_singular_value
from attnlab.seeding import generator, stream_seed


@dataclass(frozen=True)
class LogLinearFit:
    """y ~ c * base^x fitted on log y: `value` the fitted base (or exponent), [low, high] its 95% interval."""

    value: float
    low: float
    high: float
    r2: float
    points: int


def _linear_fit(x: np.ndarray, y: np.ndarray, what: str) -> tuple[float, float, float, float]:
    """Least squares y = a + b x: (b, half-width of b's 95% interval, a, r^2)."""
    if x.size < 3:
        raise ValueError(f"{what}: need at least 3 finite positive points, got {x.size}")
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, x.size - 2) * fit.stderr
    return float(fit.slope), float(half), float(fit.intercept), float(fit.rvalue**2)


def fit_contraction(losses: Sequence[float], steps: Sequence[float] | None = None, start: float = 0,
                    stop: float | None = None) -> LogLinearFit:
    """Per-step contraction factor q of log loss_t = a + t log q over steps in [start, stop].

    losses and steps (default 0, 1, ...) are 1-D; non-finite or non-positive losses are dropped.
    """
    y = np.asarray(losses, dtype=float)
    t = np.arange(y.size, dtype=float) if steps is None else np.asarray(steps, dtype=float)
    if t.shape != y.shape:
        raise ValueError(f"steps has shape {t.shape}, losses {y.shape}: they must match")
    keep = np.isfinite(y) & (y > 0) & (t >= start) & (t <= (math.inf if stop is None else stop))
    slope, half, _, r2 = _linear_fit(t[keep], np.log(y[keep]), "fit_contraction")
    return LogLinearFit(math.exp(slope), math.exp(slope - half), math.exp(slope + half), r2, int(keep.sum()))


def predicted_contraction(alpha_0: float, gamma: float, tau_1: float = 1.0) -> float:
    """The theorem's per-epoch factor 1 - gamma tau_1^2 alpha_0^2 / 2 (tau_1 = 1: 1 - gamma alpha_0^2 / 2)."""
    return 1.0 - gamma * tau_1**2 * alpha_0**2 / 2.0


def feature_alpha(model: ShallowEncoder, params: Params, X: torch.Tensor) -> float:
    """alpha = smallest singular value of F = relu(h) (N, d_m) on X (N, T, d)."""
    with torch.no_grad():
        return smallest_singular_value(model.forward_state(params, X).r)


def attention_at(model: ShallowEncoder, params: Params, X: torch.Tensor) -> dict[str, float]:
    """logit_std, attention_entropy (mean over rows), attention_max_dev = max |S_ij - 1/T| and
    attention_mean_dev = mean |S_ij - 1/T| on X."""
    with torch.no_grad():
        s = model.forward_state(params, X)
        return attention_statistics(s.L, s.S)


def _draw_seed(seed: int, i: int) -> int:
    """Seed of the i-th initialisation of a Monte-Carlo estimate with seed `seed`."""
    return stream_seed(seed, f"monte-carlo-init-{i}")


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte-Carlo estimate and its standard error over `draws` independent initialisations."""

    value: float
    stderr: float
    draws: int


def lambda_0_monte_carlo(model: ShallowEncoder, X: torch.Tensor, draws: int = 32, seed: int = 0,
                         bootstrap: int = 200) -> MonteCarloEstimate:
    """lambda_0 = lambda_min(E[F F^T] / d_m) at initialisation, F = relu(h) (N, d_m) on X (N, T, d).

    E is the average over `draws` initialisations (float64, X's device); the standard error is the
    standard deviation of lambda_min over `bootstrap` resamplings of the draws.
    """
    if draws < 2:
        raise ValueError(f"draws = {draws}: need at least 2 initialisations for an error bar")
    X = X.double()
    grams = []
    with torch.no_grad():
        for i in range(draws):
            params = model.init(_draw_seed(seed, i), dtype=torch.float64, device=str(X.device))
            F = model.forward_state(params, X).r
            grams.append(F @ F.T / model.d_m)
    grams_t = torch.stack(grams)                                           # (draws, N, N)
    value = float(torch.linalg.eigvalsh(grams_t.mean(0)).min())
    gen = generator(seed, "lambda-0-bootstrap")
    picks = torch.randint(draws, (bootstrap, draws), generator=gen).to(grams_t.device)
    resampled = torch.stack([grams_t[p].mean(0) for p in picks])
    spread = torch.linalg.eigvalsh(resampled)[:, 0].std()
    return MonteCarloEstimate(value, float(spread), draws)


def logit_variance(model: ShallowEncoder, X: torch.Tensor) -> torch.Tensor:
    """Var(L_ij) at initialisation (N, T, T) for X (N, T, d): tau_0^2 d_m eta_Q eta_K |x_i|^2 |x_j|^2.

    eta_* are the effective variances (multiplier^2 times the init variance) of W_Q and W_K.
    """
    eta = model.effective_variances()
    sq = (X.double() ** 2).sum(-1)                                         # (N, T)
    return model.tau_0**2 * model.d_m * eta["W_Q"] * eta["W_K"] * sq[:, :, None] * sq[:, None, :]


def sampled_logit_variance(model: ShallowEncoder, X: torch.Tensor, draws: int = 1000,
                           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance of each logit L_ij over `draws` initialisations and its standard error: (N, T, T) each.

    The standard error of a sample variance is sqrt((m_4 - s^4) / draws), m_4 the fourth central moment.
    """
    if draws < 2:
        raise ValueError(f"draws = {draws}: need at least 2 initialisations")
    X = X.double()
    inits = [model.init(_draw_seed(seed, i), dtype=torch.float64, device=str(X.device)) for i in range(draws)]
    c = model.multipliers
    Q = c["W_Q"] * torch.einsum("ntd,kmd->kntm", X, torch.stack([p["W_Q"] for p in inits]))
    Kk = c["W_K"] * torch.einsum("ntd,kmd->kntm", X, torch.stack([p["W_K"] for p in inits]))
    logits = model.tau_0 * (Q @ Kk.transpose(-1, -2))                     # (draws, N, T, T)
    centred = logits - logits.mean(0)
    var = (centred**2).mean(0)
    m4 = (centred**4).mean(0)
    return var * draws / (draws - 1), torch.sqrt((m4 - var**2).clamp_min(0) / draws)


def theory_beside_measurements(model: ShallowEncoder, params0: Params, X: torch.Tensor,
                               losses: Sequence[float], steps: Sequence[float], gamma: float,
                               fit_start: float = 0, fit_stop: float | None = None,
                               lambda_0_draws: int = 0, seed: int = 0) -> dict[str, float]:
    """The spec's section-4 quantities for one run, as a flat dict to print beside its curves.

    X (N, T, d) the training inputs; losses/steps the run's training-loss curve; gamma its step size.
    Keys: alpha_0, alpha_0_sq_over_d_m, fitted_factor (+ _low, _high, _r2), predicted_factor
    (1 - gamma alpha_0^2/2), predicted_factor_tau_1 (1 - gamma tau_1^2 alpha_0^2/2),
    logit_var_formula (mean over sequences and pairs) and logit_var_measured (mean of L_ij^2 at
    params0: the logits are centred, so its expectation is the formula's mean), and with
    lambda_0_draws >= 2 also lambda_0, lambda_0_stderr.
    """
    alpha_0 = feature_alpha(model, params0, X)
    fit = fit_contraction(losses, steps, start=fit_start, stop=fit_stop)
    formula = logit_variance(model, X)
    with torch.no_grad():
        L = model.forward_state(params0, X).L.double()
    row = {"alpha_0": alpha_0, "alpha_0_sq_over_d_m": alpha_0**2 / model.d_m,
           "fitted_factor": fit.value, "fitted_factor_low": fit.low, "fitted_factor_high": fit.high,
           "fitted_factor_r2": fit.r2,
           "predicted_factor": predicted_contraction(alpha_0, gamma),
           "predicted_factor_tau_1": predicted_contraction(alpha_0, gamma, model.tau_1),
           "logit_var_formula": float(formula.mean()),
           "logit_var_measured": float((L**2).mean())}
    if lambda_0_draws >= 2:
        estimate = lambda_0_monte_carlo(model, X, draws=lambda_0_draws, seed=seed)
        row.update(lambda_0=estimate.value, lambda_0_stderr=estimate.stderr)
    return row
