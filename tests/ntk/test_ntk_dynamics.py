"""Linearised dynamics against explicit iteration and against real training; the drift recorder in a
Trainer; the loss-prediction figure; `attnlab ntk` on a small config."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.config import TrainConfig, parse_config
from attnlab.data.dataset import Dataset
from attnlab.models import KernelTransformer
from attnlab.cli.compare import linearised_vs_training
from attnlab.ntk import LinearizedDynamics, NTKDriftRecorder, empirical, plot_loss_prediction, smallest_eigenvalue
from attnlab.train.trainer import Trainer

F64 = torch.float64


def tiny_problem(n=8, n_val=3, m=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n + n_val, 3, 2, generator=gen, dtype=F64)
    X = X / X.norm(dim=-1, keepdim=True)
    y = torch.randn(n + n_val, generator=gen, dtype=F64)
    model = KernelTransformer(d=2, m=m)
    data = Dataset(X[:n], y[:n], X[n:], y[n:])
    return model, model.init(seed, dtype=F64), data


@pytest.mark.parametrize("loss", ["mse", "half-mse"])
def test_closed_form_equals_explicit_iteration_even_for_singular_kernels(loss):
    gen = torch.Generator().manual_seed(1)
    J = torch.randn(6, 4, generator=gen, dtype=F64)
    J_new = torch.randn(2, 4, generator=gen, dtype=F64)
    K, K_new = J @ J.T, J_new @ J.T                      # rank 4 < 6: two zero eigenvalues
    r0, f0_new = torch.randn(6, generator=gen, dtype=F64), torch.randn(2, generator=gen, dtype=F64)
    lr, c = 0.05, (2 / 6 if loss == "mse" else 1 / 6)
    dyn = LinearizedDynamics(K, r0, lr, loss)
    r, f_new, scale = r0.clone(), f0_new.clone(), c / 2
    steps = np.arange(31)
    res, loss_curve, pred = dyn.residuals(steps), dyn.loss_curve(steps), dyn.predict(K_new, f0_new, steps)
    for t in steps:
        np.testing.assert_allclose(res[t], r.numpy(), rtol=1e-10, atol=1e-12)
        assert loss_curve[t] == pytest.approx(scale * float(r @ r), rel=1e-10)
        np.testing.assert_allclose(pred[t], f_new.numpy(), rtol=1e-10, atol=1e-12)
        f_new = f_new - c * lr * K_new @ r
        r = r - c * lr * K @ r


def test_linearised_prediction_matches_tiny_step_training():
    model, params, data = tiny_problem(m=512)
    K = empirical(model, data.X_train, params=params).total
    lam_max = float(torch.linalg.eigvalsh(K)[-1])
    n = data.X_train.shape[0]
    lr = 0.5 / (2 / n * lam_max)                          # c eta lambda_max = 0.5: the fast modes close
    steps = 60
    result = Trainer(model, TrainConfig(method="gd", steps=steps, lr=lr, loss="mse", record_every=1)).fit(params, data)
    f0 = model.forward(params, data.X_train)
    dyn = LinearizedDynamics(K, f0 - data.y_train, lr, "mse")
    real = result.curves.set_index("step")["train_loss"]
    predicted = dyn.loss_curve(real.index.to_numpy())
    assert real.iloc[-1] < 0.7 * real.iloc[0]              # training moved the loss ...
    np.testing.assert_allclose(predicted, real.to_numpy(), rtol=0.03)   # ... as the kernel predicted
    K_val = empirical(model, data.X_val, data.X_train, params=params).total
    f_val = dyn.predict(K_val, model.forward(params, data.X_val), [steps])[0]
    truth = model.forward(result.last, data.X_val)
    assert float((torch.as_tensor(f_val) - truth).norm() / (truth - model.forward(params, data.X_val)).norm()) < 0.1


def test_bad_linearised_input():
    with pytest.raises(ValueError, match="residual0 has 3"):
        LinearizedDynamics(torch.eye(2), torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="lr = -1"):
        LinearizedDynamics(torch.eye(2), torch.zeros(2), -1)


def test_drift_recorder_in_a_trainer():
    model, params, data = tiny_problem(m=8)
    recorder = NTKDriftRecorder(model, data.X_train, every=5)
    result = Trainer(model, TrainConfig(method="gd", steps=20, lr=0.5, loss="mse", record_every=5),
                     recorders=[recorder]).fit(params, data)
    curves = result.curves.set_index("step")
    assert curves.loc[0, "ntk_drift"] == 0.0
    K0 = empirical(model, data.X_train, params=params).total
    assert curves.loc[0, "ntk_lambda_min"] == pytest.approx(smallest_eigenvalue(K0), rel=1e-12)
    K_end = empirical(model, data.X_train, params=result.last).total
    expected = float((K_end - K0).norm() / K0.norm())
    assert curves.loc[20, "ntk_drift"] == pytest.approx(expected, rel=1e-10) and expected > 0
    with pytest.raises(ValueError, match="every = 0"):
        NTKDriftRecorder(model, data.X_train, every=0)


def test_loss_prediction_plot(tmp_path):
    path = plot_loss_prediction([0, 1, 2], [1.0, 0.5, 0.25], [0, 1, 2], [1.0, 0.6, 0.3], tmp_path / "fig.png")
    assert path.exists() and path.stat().st_size > 0


def test_linearised_vs_training_of_a_config(tmp_path):
    config = parse_config({"model": {"name": "kernel-transformer", "m": 256},
                           "data": {"name": "teacher", "n": 10, "T": 3, "d": 2},
                           "train": {"method": "gd", "steps": 30, "lr": 1.0, "record_every": 5},
                           "dtype": "float64"})
    frame = linearised_vs_training(config, tmp_path / "fit.png")
    assert list(frame.columns) == ["step", "train_loss", "predicted_loss"] and frame["step"].iloc[-1] == 30
    assert frame["predicted_loss"].iloc[0] == pytest.approx(frame["train_loss"].iloc[0], rel=1e-9)
    assert frame["train_loss"].iloc[-1] < 0.1 * frame["train_loss"].iloc[0]
    np.testing.assert_allclose(frame["predicted_loss"], frame["train_loss"], rtol=0.02)
    assert (tmp_path / "fit.png").exists()
    with pytest.raises(ValueError, match="projsgd"):
        linearised_vs_training(config.model_copy(update={"train": TrainConfig(method="projsgd")}))


def test_ntk_command_prints_and_saves_the_spectrum(tmp_path):
    out = tmp_path / "ntk"
    result = CliRunner().invoke(app, ["ntk", "--n", "12", "--m", "8", "--T", "3", "--d", "2",
                                      "--n-data", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "smallest eigenvalue" in result.output and "condition number" in result.output
    spectrum = np.load(out / "spectrum.npy")
    summary = json.loads((out / "ntk_summary.json").read_text())
    assert spectrum.shape == (12,) and summary["lambda_min"] == pytest.approx(spectrum[0])
    matrix_free = CliRunner().invoke(app, ["ntk", "--n", "12", "--m", "8", "--T", "3", "--d", "2",
                                           "--n-data", "20", "--lanczos", "2", "--out", str(tmp_path / "mf")])
    assert matrix_free.exit_code == 0, matrix_free.output
    lanczos = json.loads((tmp_path / "mf" / "ntk_summary.json").read_text())
    assert np.load(tmp_path / "mf" / "spectrum.npy") == pytest.approx(spectrum[[0, 1, -1]], rel=1e-7)
    for key in ("lambda_min", "lambda_max", "trace"):
        assert lanczos[key] == pytest.approx(summary[key], rel=1e-7), key
    bad = CliRunner().invoke(app, ["ntk", "--n", "999", "--m", "8", "--n-data", "20", "--out", str(out)])
    assert bad.exit_code != 0 and "--n 999" in bad.output


def test_compare_command_writes_the_figure_and_table_and_refuses_sgd(tmp_path):
    from typer.testing import CliRunner

    from attnlab.cli import app

    args = ["compare", "--m", "64", "--n", "10", "--T", "3", "--d", "2", "--method", "gd", "--steps", "20",
            "--lr", "1.0", "--record-every", "5", "--dtype", "float64", "--out", str(tmp_path / "cmp")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(table.columns) == ["step", "train_loss", "predicted_loss"] and table["step"].iloc[-1] == 20
    assert (tmp_path / "cmp" / "compare.png").is_file() and "linearised prediction" in result.output
    refused = CliRunner().invoke(app, [*args[:-2], "--method", "projsgd", "--out", str(tmp_path / "sgd")])
    assert refused.exit_code == 2 and "projsgd" in refused.output
