"""The teacher's attention option: "full" (the paper's equations) and "diagonal" (the published
code's einsum "kdd,bd->bkd", which keeps only diag(W_k)), checked against a plain loop."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import ConfigError, parse_config
from attnlab.data import build_teacher
from attnlab.data.teacher import Teacher, random_sequences
from attnlab.theory.kernel_regime import approximation_error


def explicit_label(x: torch.Tensor, teacher: Teacher, U: torch.Tensor, W: torch.Tensor, diagonal: bool) -> float:
    """(1/K) sum_k <psi(x; phi_k), v(phi_k)> for one sequence x (T, d), written out head by head
    with d x d feature matrices; the logits use diag(W_k) when `diagonal`."""

    def features(seq: torch.Tensor, u: torch.Tensor, w: torch.Tensor):
        query = seq[-1]
        if diagonal:
            logits = torch.stack([sum(tok[e] * w[e, e] * query[e] for e in range(len(query))) for tok in seq])
        else:
            logits = torch.stack([tok @ w @ query for tok in seq])
        p = torch.exp(logits - logits.max())
        p = p / p.sum()
        a = sum(p[t] * seq[t] for t in range(len(seq)))
        M = sum(p[t] * torch.outer(seq[t], seq[t]) for t in range(len(seq))) - torch.outer(a, a)
        s = u @ a
        ds = 1 - torch.tanh(s) ** 2
        return torch.tanh(s), ds * a, ds * torch.outer(M @ u, query)

    total = 0.0
    for k in range(U.shape[0]):
        v_c, v_u, v_w = 0.0, torch.zeros_like(U[k]), torch.zeros_like(W[k])
        for alpha, anchor in zip(teacher.alpha, teacher.anchors):
            c_r, u_r, w_r = features(anchor, U[k], W[k])
            v_c = v_c + alpha * teacher.nu_c * c_r
            v_u = v_u + alpha * teacher.nu_u * u_r
            v_w = v_w + alpha * min(1.0, teacher.nu_w / float(w_r.norm())) * w_r
        c, u, w = features(x, U[k], W[k])
        total += float(c * v_c + u @ v_u + (w * v_w).sum())
    return total / U.shape[0]


@pytest.mark.parametrize("attention", ["full", "diagonal"])
def test_teacher_labels_equal_the_explicit_computation(attention):
    X = random_sequences(5, 4, 3, seed=4)
    teacher = Teacher(X[:3], seed=4, nu=(3.0, 2.0, 0.5), attention=attention)
    y = teacher.labels(X, K=6, chunk=4, compute_dtype=torch.float64)
    U, W = teacher.draw(6)
    expected = torch.tensor([explicit_label(x, teacher, U, W, attention == "diagonal") for x in X],
                            dtype=torch.float64)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-12)


def test_diagonal_teacher_differs_from_full_and_ignores_off_diagonal_weights():
    X = random_sequences(200, 8, 4, seed=1)
    full = Teacher(X[:8], seed=1, attention="full").labels(X, K=256, compute_dtype=torch.float64)
    diagonal = Teacher(X[:8], seed=1, attention="diagonal")
    y = diagonal.labels(X, K=256, compute_dtype=torch.float64)
    assert float((y - full).norm() / full.norm()) > 0.05
    U, W = diagonal.draw(16)
    scrambled = W + torch.randn(W.shape, dtype=W.dtype) * (1 - torch.eye(4, dtype=W.dtype))
    torch.testing.assert_close(diagonal.features_dot_transport(X, U, scrambled),
                               diagonal.features_dot_transport(X, U, W), rtol=1e-12, atol=1e-12)


def test_attention_option_reaches_the_data_and_the_run_identity():
    from attnlab.run import run_id

    base = {"task": "approximation-error", "data": {"n": 40, "T": 4, "d": 3, "K": 64}, "model": {"m": 8}}
    full = parse_config(base)
    diagonal = parse_config({**base, "data": {**base["data"], "attention": "diagonal"}})
    assert full.data.attention == "full" and run_id(full) != run_id(diagonal)
    (_, y_full, _), (_, y_diag, teacher) = build_teacher(full.data, 0), build_teacher(diagonal.data, 0)
    assert teacher.attention == "diagonal" and not torch.allclose(y_full, y_diag)
    X, y, _ = build_teacher(diagonal.data, 0)
    assert math.isfinite(approximation_error(teacher, X, y, 8))


def test_unknown_attention_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"data\.attention = 'diag'.*'full'.*'diagonal'"):
        parse_config({"data": {"attention": "diag"}})
    with pytest.raises(ValueError, match="attention = 'diag'"):
        Teacher(random_sequences(4, 3, 2, seed=0), seed=0, attention="diag")
