"""Figure: the linearised (NTK) prediction of the training loss beside a real training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_loss_prediction(steps, predicted, real_steps, real_loss, path: str | Path,
                         title: str = "training loss: linearised prediction vs training") -> Path:
    """Draw predicted (len(steps),) and real (len(real_steps),) loss curves on log axes; save to
    `path` (PNG/PDF by suffix) with matplotlib's Agg backend and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(np.asarray(real_steps), np.asarray(real_loss), label="training (real)", lw=2)
    ax.plot(np.asarray(steps), np.asarray(predicted), "--", label="linearised (NTK at init)", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
