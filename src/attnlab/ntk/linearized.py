"""Training dynamics of the linearised model, predicted from the NTK at initialisation.

For the squared loss L = s * sum_j (f_j - y_j)^2 (s = 1/n for "mse", 1/(2n) for "half-mse", 1/2 for
"half-sum") and full-batch gradient descent with step eta, the linearised residual r = f - y evolves as

    r_t = (I - c eta K)^t r_0,        c = 2 s   (2/n for mse, 1/n for half-mse),

and a new input moves as f_t(X*) = f_0(X*) - K(X*, X) K^{-1} (I - (I - c eta K)^t) r_0. Both are
evaluated in the eigenbasis K = Q diag(lambda) Q^T; K^{-1}(I - (I - c eta K)^t) is applied as the
spectral function (1 - (1 - c eta lambda)^t) / lambda, whose value at lambda -> 0 is c eta t, so
singular and near-singular modes need no inverse.
"""

from __future__ import annotations

import numpy as np
import torch

from attnlab.models.losses import loss_scale


def _numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)


class LinearizedDynamics:
    """Linearised full-batch GD from K (n, n) at initialisation and r_0 = f_0(X) - y (n,)."""

    def __init__(self, K: torch.Tensor | np.ndarray, residual0: torch.Tensor | np.ndarray, lr: float,
                 loss: str = "mse"):
        K, r0 = _numpy(K), _numpy(residual0).reshape(-1)
        if K.shape != (r0.size, r0.size):
            raise ValueError(f"K has shape {K.shape} but residual0 has {r0.size} entries: "
                             "K must be (n, n) on the training inputs")
        if lr <= 0:
            raise ValueError(f"lr = {lr}: must be positive")
        self.n, self.lr, self.loss = r0.size, lr, loss
        self.scale = loss_scale(loss, self.n)
        self.rate = 2 * self.scale * lr                       # c * eta
        self.eigenvalues, self.Q = np.linalg.eigh((K + K.T) / 2)
        self.r0_modes = self.Q.T @ r0

    def _steps(self, steps) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.float64).reshape(-1)
        if (steps < 0).any():
            raise ValueError("steps must be >= 0")
        return steps

    def residuals(self, steps) -> np.ndarray:
        """r_t (len(steps), n) on the training inputs."""
        decay = (1 - self.rate * self.eigenvalues)[None, :] ** self._steps(steps)[:, None]
        return (decay * self.r0_modes) @ self.Q.T

    def loss_curve(self, steps) -> np.ndarray:
        """Predicted training loss s * ||r_t||^2 at each step (len(steps),)."""
        decay = (1 - self.rate * self.eigenvalues)[None, :] ** (2 * self._steps(steps)[:, None])
        return self.scale * (decay * self.r0_modes**2).sum(1)

    def predict(self, K_new: torch.Tensor | np.ndarray, f0_new: torch.Tensor | np.ndarray, steps) -> np.ndarray:
        """f_t(X*) (len(steps), n*) from K(X*, X) (n*, n) and f_0(X*) (n*,)."""
        K_new, f0_new = _numpy(K_new), _numpy(f0_new).reshape(-1)
        if K_new.shape != (f0_new.size, self.n):
            raise ValueError(f"K_new has shape {K_new.shape}: expected (n*, n) = ({f0_new.size}, {self.n})")
        t = self._steps(steps)[:, None]
        gain = self.rate * _geometric_sum(self.rate * self.eigenvalues[None, :], t)  # (1-(1-x)^t)/lambda
        return f0_new[None, :] - (gain * self.r0_modes) @ (K_new @ self.Q).T


def _geometric_sum(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """sum_{j<t} (1 - x)^j = (1 - (1 - x)^t) / x, accurate for x -> 0 (value t) and any x."""
    x, t = np.broadcast_arrays(x, t)
    out = np.empty_like(x, dtype=np.float64)
    tiny = np.abs(x) < 1e-12
    out[tiny] = t[tiny]
    small = ~tiny & (x < 1)
    out[small] = -np.expm1(t[small] * np.log1p(-x[small])) / x[small]
    rest = ~tiny & ~small
    out[rest] = (1 - (1 - x[rest]) ** t[rest]) / x[rest]
    return out
