"""The linearised (NTK at initialisation) prediction of a run's training loss beside the real run.

Agreement is the visible sign of the kernel regime, disagreement the sign of leaving it. The
prediction is that of full-batch gradient descent without projection; for projected GD it holds
while the iterates stay inside the radii, and stochastic GD is refused.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from attnlab.config import RunConfig
from attnlab.ntk.empirical import empirical
from attnlab.ntk.linearized import LinearizedDynamics
from attnlab.ntk.plots import plot_loss_prediction
from attnlab.run import setup
from attnlab.train.trainer import Trainer


def linearised_vs_training(config: RunConfig, path: str | Path | None = None,
                           max_memory: float | None = None) -> pd.DataFrame:
    """Train `config` in memory and predict its training loss from the float64 NTK of the training
    set at initialisation. Returns a frame (step, train_loss, predicted_loss) at the recorded steps,
    with the step the run diverged at (None: it did not) in frame.attrs["diverged_at"]; with `path`,
    also saves the figure there (PNG/PDF by suffix)."""
    if config.train.method == "projsgd":
        raise ValueError("train.method = 'projsgd': the linearised prediction is for full-batch "
                         "gradient descent (gd, or projgd inside the radii)")
    s = setup(config)
    X, y = s.data.X_train, s.data.y_train
    K = empirical(s.model, X, params=s.params0, dtype=torch.float64, blocks=False, max_memory=max_memory).total
    with torch.no_grad():
        residual0 = s.model.forward(s.params0, X).double() - y.double()
    loss = config.train.loss or s.model.default_loss
    dynamics = LinearizedDynamics(K, residual0, config.train.step_size, loss)
    result = Trainer(s.model, config.train, seed=config.seed).fit(s.params0, s.data)
    frame = result.curves[["step", "train_loss"]].dropna().reset_index(drop=True)
    frame["predicted_loss"] = dynamics.loss_curve(frame["step"].to_numpy())
    frame.attrs["diverged_at"] = result.summary.get("diverged_at")
    if path is not None:
        plot_loss_prediction(frame["step"], frame["predicted_loss"], frame["step"], frame["train_loss"], path,
                             title=f"{config.model.name}: linearised prediction vs training")
    return frame
