"""The closed-form infinite-width NTK of the encoder under tau_0 = d_m^-1 and NTK initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.models.shallow_encoder import ShallowEncoder
from attnlab.ntk.encoder_limit import arccos_kernels, infinite_width_ntk, infinite_width_ntk_blocks
from attnlab.seeding import generator


def _inputs(n=6, T=3, d=5):
    X = torch.randn(n, T, d, generator=generator(0, "limit-inputs"), dtype=torch.float64)
    return X / X.norm(dim=-1, keepdim=True)


def test_arccos_kernels_match_monte_carlo():
    u = 0.3
    g = torch.randn(400_000, 2, generator=generator(1, "mc"), dtype=torch.float64)
    h1, h2 = g[:, 0], u * g[:, 0] + (1 - u**2) ** 0.5 * g[:, 1]
    kappa_0, kappa_1 = arccos_kernels(torch.tensor(u, dtype=torch.float64))
    se = 4 / 400_000**0.5
    assert abs(float(((h1 > 0) & (h2 > 0)).double().mean()) - float(kappa_0) / 2) < se
    assert abs(float((torch.relu(h1) * torch.relu(h2)).mean()) - float(kappa_1) / 2) < se


def test_limit_is_symmetric_psd_and_depends_on_mean_token_only():
    X = _inputs()
    K = infinite_width_ntk(X)
    assert torch.allclose(K, K.T) and float(torch.linalg.eigvalsh(K).min()) > -1e-12
    shuffled = X[:, torch.tensor([2, 0, 1])]
    assert torch.allclose(infinite_width_ntk(shuffled), K)
    assert torch.allclose(infinite_width_ntk(X, phi="mean"), K)
    blocks = infinite_width_ntk_blocks(X, X[:2])
    assert blocks["W_Q"].shape == (6, 2) and float(blocks["W_Q"].abs().max()) == 0


@pytest.mark.parametrize("phi,widths", [("mean", (32, 128, 512)), ("flatten", (32, 128, 512))])
def test_empirical_ntk_converges_like_inverse_sqrt_width(phi, widths):
    X = _inputs()
    K_inf = infinite_width_ntk(X, phi=phi)
    errors = []
    for d_m in widths:
        model = ShallowEncoder(d=5, T=3, d_m=d_m, phi=phi, scaling="linear", init="ntk")
        per_seed = [float((model.ntk(model.init(s, dtype=torch.float64), X) - K_inf).norm() / K_inf.norm())
                    for s in range(6)]
        errors.append(np.mean(per_seed))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.8 < slope < -0.3, (errors, slope)
    assert errors[-1] < 0.2
