"""scripts/loss-rises.py counts the steps whose training loss rose above the previous step's."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "loss-rises.py"
spec = importlib.util.spec_from_file_location("loss_rises", SCRIPT)
loss_rises = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loss_rises)


def test_rises_count_period_two_oscillation_in_step_order_and_ignore_rounding():
    losses = [1.0, 0.9, 0.8, 0.8 * (1 + 1e-8), 0.7, 0.75, 0.6, 0.65, 0.5]
    curves = pd.DataFrame({"step": range(len(losses)), "train_loss": losses}).iloc[::-1]   # any row order
    assert loss_rises.rises(curves, tolerance=1e-6) == (2, 5)
    assert loss_rises.rises(curves, tolerance=0.0) == (3, 3)


def test_a_monotone_curve_has_no_rise():
    curves = pd.DataFrame({"step": range(5), "train_loss": [5.0, 4.0, 3.0, 3.0, 1.0]})
    assert loss_rises.rises(curves, tolerance=1e-6) == (0, None)
