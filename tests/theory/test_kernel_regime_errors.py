"""The E1 / E2 measurements: approximation and linearisation errors of the kernel-regime model."""

import pytest
import torch

from attnlab.config import parse_config
from attnlab.data.teacher import random_sequences, teacher_problem
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.run import measure
from attnlab.theory.kernel_regime import approximation_error, boundary_direction, linearisation_error

RADII = {"W": 3.0, "U": 3.0, "c": 3.0}


def test_the_labels_own_draws_approximate_the_labels_exactly():
    X, y, teacher = teacher_problem(50, 4, 3, seed=0, K=256, anchors=4)
    # the labels are the average over the K draws of the "teacher-draws" stream (per-term float32)
    assert approximation_error(teacher, X, y, 256, stream="teacher-draws") < 1e-5
    assert approximation_error(teacher, X, y, 256) > 1e-3     # fresh draws: a genuine Monte-Carlo error


def test_approximation_error_shrinks_like_monte_carlo():
    X, y, teacher = teacher_problem(100, 4, 3, seed=1, K=4096, anchors=4)
    small, large = approximation_error(teacher, X, y, 16), approximation_error(teacher, X, y, 1024)
    assert large < small / 3          # 8x fewer at m^-1/2; allow slack for the max over inputs


def test_boundary_direction_puts_every_head_on_its_sphere():
    model = KernelTransformer(d=3, m=6)
    params0 = model.init(0, torch.float64)
    delta = boundary_direction(model, params0, random_sequences(20, 5, 3, seed=0), RADII)
    for block in ("W", "U", "c"):
        norms = delta[block].reshape(6, -1).norm(dim=1)
        torch.testing.assert_close(norms, torch.full((6,), 3.0 / 6**0.5, dtype=torch.float64))


def test_linearisation_error_is_the_second_order_remainder():
    model = KernelTransformer(d=3, m=8)
    params0 = model.init(2, torch.float64)
    X = random_sequences(30, 5, 3, seed=1)
    errors = [linearisation_error(model, params0, X, {k: t * v for k, v in RADII.items()}) for t in (1e-2, 2e-2)]
    assert errors[1] / errors[0] == pytest.approx(4.0, rel=0.05)    # quadratic in the step length


def test_measure_tasks_write_their_metric_and_refuse_free_radii():
    base = {"data": {"n": 40, "T": 3, "d": 3, "K": 64, "anchors": 4}, "model": {"m": 4}, "dtype": "float64"}
    summary = measure(parse_config({**base, "task": "linearisation-error"}))
    assert summary["linearisation_error"] > 0 and summary["task"] == "linearisation-error"
    with pytest.raises(ValueError, match="train.radius"):
        measure(parse_config({**base, "task": "linearisation-error", "train": {"radius": "none"}}))
