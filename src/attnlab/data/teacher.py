"""Teacher-student data for the kernel-regime Transformer (spec kernel-regime-transformer.md, s. 5).

The teacher lies in the model's kernel class: f*(X) = E_phi <psi(X; phi), v(phi)>, where
phi = (U, W) follows the initialisation law, psi(X; phi) = (sigma(s), sigma'(s) a, sigma'(s) (M U) x_T^T)
is the per-head gradient feature (c = 1), and the transport map v is built from R anchor sequences
and bounded by (nu_c, nu_u, nu_w). Labels are Monte-Carlo averages over K draws of phi, computed in
chunks; the W-block inner products use <g x_T^T, V> = g^T V x_T and never form a d x d feature.

attention "diagonal" reproduces the published code of Arda et al., whose teacher computes the
attention logits with einsum("kdd,bd->bkd", W, x_T): the repeated index takes the diagonal, so its
logits are x_t^T diag(W_k) x_T. Everything else (draws, transport, features) is unchanged.
"""

from __future__ import annotations

import torch

from attnlab.data.dataset import Dataset, clip_token_norms, split
from attnlab.models.activations import activation
from attnlab.models.kernel_transformer import covariance_times_readout, head_features
from attnlab.seeding import generator

ATTENTION = ("full", "diagonal")


def random_sequences(n: int, T: int, d: int, seed: int, stream: str = "inputs") -> torch.Tensor:
    """Gaussian sequences (n, T, d) with every token clipped to norm at most 1 (float64)."""
    X = torch.randn(n, T, d, generator=generator(seed, stream), dtype=torch.float64)
    return clip_token_norms(X)


LABEL_CHUNK = 512               # teacher draws evaluated at once by Teacher.labels
LABEL_MAX_ELEMENTS = 2**27      # its (samples, T, draws) intermediates hold about this many values


class Teacher:
    """The transport-map teacher: draws phi_k and evaluates f* by Monte Carlo over K of them."""

    def __init__(self, anchors: torch.Tensor, seed: int, nu: tuple[float, float, float] = (3.0, 3.0, 3.0),
                 activation_name: str = "tanh", attention: str = "full"):
        """anchors (R, T, d): the sequences the transport map is built on; attention: "full" or
        "diagonal" (logits with diag(W_k) only, as the published code computes them)."""
        if attention not in ATTENTION:
            raise ValueError(f"attention = {attention!r}: allowed are {', '.join(ATTENTION)}")
        self.anchors, self.attention = anchors, attention
        self.nu_c, self.nu_u, self.nu_w = nu
        self.sigma, self.sigma_prime = activation(activation_name)
        g = torch.randn(anchors.shape[0], generator=generator(seed, "teacher-weights"), dtype=torch.float64)
        self.alpha = g / g.abs().sum()
        self.seed = seed

    def draw(self, K: int, stream: str = "teacher-draws") -> tuple[torch.Tensor, torch.Tensor]:
        """K parameter draws phi_k = (U (K, d), W (K, d, d)) from the initialisation law."""
        d = self.anchors.shape[-1]
        gen = generator(self.seed, stream)
        W = torch.randn(K, d, d, generator=gen, dtype=torch.float64)
        U = torch.randn(K, d, generator=gen, dtype=torch.float64)
        return U, W

    def attention_weights(self, W: torch.Tensor) -> torch.Tensor:
        """The matrices (K, d, d) that form the attention logits: W itself, or diag(W_k)."""
        return W if self.attention == "full" else torch.diag_embed(W.diagonal(dim1=-2, dim2=-1))

    def transport(self, U: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """v(phi_k) for each draw: v_c (K,), v_u (K, d), v_w (K, d, d) (one d x d per draw, not per sample)."""
        anchors, alpha = self.anchors.to(U.device, U.dtype), self.alpha.to(U.device, U.dtype)
        h = head_features(self.attention_weights(W), U, anchors)            # over R anchors, K heads
        ds = self.sigma_prime(h.s)                                          # (R, K)
        v_c = self.nu_c * (alpha @ self.sigma(h.s))
        v_u = self.nu_u * torch.einsum("r,rk,rkd->kd", alpha, ds, h.a)
        g = covariance_times_readout(anchors, h)                            # (R, K, d)
        frob = ds.abs() * g.norm(dim=-1) * h.xT.norm(dim=-1, keepdim=True)  # ||sigma' g x_T^T||_F
        clip = torch.clamp(self.nu_w / frob.clamp_min(1e-300), max=1.0)
        v_w = torch.einsum("r,rk,rkd,re->kde", alpha, clip * ds, g, h.xT)
        return v_c, v_u, v_w

    def features_dot_transport(self, X: torch.Tensor, U: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """<psi(X_j; phi_k), v(phi_k)> for every sample and draw: (n, K)."""
        v_c, v_u, v_w = self.transport(U, W)
        h = head_features(self.attention_weights(W), U, X)
        ds = self.sigma_prime(h.s)
        g = covariance_times_readout(X, h)
        w_term = torch.einsum("jkd,kde,je->jk", g, v_w, h.xT)
        return self.sigma(h.s) * v_c + ds * ((h.a * v_u).sum(-1) + w_term)

    def labels(self, X: torch.Tensor, K: int, chunk: int = LABEL_CHUNK, compute_dtype: torch.dtype = torch.float32,
               max_elements: int = LABEL_MAX_ELEMENTS, device: str | torch.device = "cpu") -> torch.Tensor:
        """Monte-Carlo teacher values y_j = (1/K) sum_k <psi(X_j; phi_k), v(phi_k)>: (n,) float64 on
        the CPU.

        Per-draw terms are computed in `compute_dtype` (float32: 3x faster, ~1e-7 relative error)
        and summed in float64, `chunk` draws at a time; samples are split too where one (samples,
        T, draws) intermediate would exceed `max_elements` (long sequences). The draws are made on
        the CPU (the same for every device); the terms are computed on `device` (a GPU takes E5's
        T = 1024 labels in seconds, the CPU in minutes per seed)."""
        U, W = self.draw(K)
        n, T = X.shape[:2]
        total = torch.zeros(n, dtype=torch.float64, device=device)
        X, U, W = (t.to(device, compute_dtype) for t in (X, U, W))
        rows = n if n * T * chunk <= max_elements else max(1, max_elements // (T * chunk))
        for first in range(0, n, rows):
            for start in range(0, K, chunk):
                part = self.features_dot_transport(X[first:first + rows], U[start:start + chunk],
                                                   W[start:start + chunk])
                total[first:first + rows] += part.sum(1, dtype=torch.float64)
        return (total / K).cpu()

    def label_bound(self, K: int) -> float:
        """|y| <= nu_c sup|sigma| + nu_u sup|sigma'| + nu_w sup|sigma'| mean_k ||U_k||: every
        per-draw term is bounded by Cauchy-Schwarz, since ||a|| <= 1, ||M U|| <= ||U||, ||x_T|| <= 1."""
        U, _ = self.draw(K)
        dmax = float(self.sigma_prime(torch.zeros(1, dtype=torch.float64)))
        return self.nu_c + dmax * (self.nu_u + self.nu_w * float(U.norm(dim=-1).mean()))


def teacher_problem(n: int, T: int, d: int, seed: int, K: int = 8192, anchors: int = 16,
                    nu: tuple[float, float, float] = (3.0, 3.0, 3.0), activation_name: str = "tanh",
                    noise: float = 0.0, attention: str = "full",
                    device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, Teacher]:
    """All n sequences X (n, T, d), their labels y (n,) and the teacher that made them, on the CPU
    in float64 (the labels computed on `device`)."""
    X = random_sequences(n, T, d, seed)
    pick = torch.randperm(n, generator=generator(seed, "anchors"))[:anchors]
    teacher = Teacher(X[pick], seed, nu, activation_name, attention)
    y = teacher.labels(X, K, device=device)
    if noise > 0:
        y = y + noise * torch.randn(n, generator=generator(seed, "label-noise"), dtype=torch.float64)
    return X, y, teacher


def teacher_data(n: int, T: int, d: int, seed: int, K: int = 8192, anchors: int = 16,
                 nu: tuple[float, float, float] = (3.0, 3.0, 3.0), activation_name: str = "tanh",
                 val_fraction: float = 0.2, noise: float = 0.0, attention: str = "full") -> Dataset:
    """n teacher-labelled sequences (T tokens of dimension d, norms <= 1), split train/validation."""
    X, y, _ = teacher_problem(n, T, d, seed, K, anchors, nu, activation_name, noise, attention)
    return split(X, y, val_fraction, seed)
