"""The independently recurrent network (IndRNN) of the recurrent baseline (spec recurrent-baseline.md, s. 1).

For a sequence X (T, d) the m units evolve with a diagonal recurrence and the output has the same
form as the kernel-regime Transformer's:

    h_0 = 0,   h_t = sigma(W_in x_t + u * h_{t-1}),   f(X) = m^{-1/2} sum_i c_i h_{T,i}

Parameters: W_in (m, d), u (m,), c (m,). The recurrence is the hot loop. `loss_and_grad` is
backpropagation through time written out: with z_t the pre-activations and g_t = dL/dz_t,

    g_T = sigma'(z_T) * dL/dh_T,   g_t = sigma'(z_t) * u * g_{t+1},   dL/dh_T = w_b c / sqrt(m)
    dL/dW_in = sum_{b,t} g_t x_t^T,   dL/du = sum_{b,t} g_t * h_{t-1},   dL/dc = sum_b w_b h_T / sqrt(m)

where w_b = dL/df_b. The forward keeps one (T, B, m) buffer (states for tanh, pre-activations
otherwise) that the backward overwrites with g_t; no autograd graph is built.
Peak memory of a training step is therefore O(T B m), like the Transformer's attention (O(T B m)).
"""

from __future__ import annotations

import math

import torch

from attnlab.models.activations import activation
from attnlab.models.base import Model, Params, check_sizes
from attnlab.seeding import generator
from attnlab.train.losses import loss_scale


def input_drive(W_in: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """W_in x_t for every step and sample, laid out time-major: (T, B, m) from W_in (m, d), X (B, T, d).

    For even m the two halves of the units are two equal-shaped products written side by side, so
    units with bitwise-equal input weights get bitwise-equal drives (one matmul may round different
    output columns differently); this keeps the paired initialisation exactly at f = 0."""
    m, d = W_in.shape
    B, T, _ = X.shape
    rows = X.transpose(0, 1).reshape(T * B, d)
    if m % 2:
        return (rows @ W_in.T).reshape(T, B, m)
    half = m // 2
    if torch.is_grad_enabled():  # out= is not differentiable: batch the two halves instead
        halves = torch.matmul(rows, W_in.reshape(2, half, d).transpose(1, 2))     # (2, T*B, m/2)
        return halves.permute(1, 0, 2).reshape(T, B, m)
    drive = torch.empty(T * B, m, dtype=rows.dtype, device=rows.device)
    torch.mm(rows, W_in[:half].T, out=drive[:, :half])
    torch.mm(rows, W_in[half:].T, out=drive[:, half:])
    return drive.reshape(T, B, m)


def readout(h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """m^{-1/2} sum_i c_i h_i (B,) from h (B, m), c (m,); for even m unit i and unit i + m/2 are
    added first, so a paired initialisation (equal h, opposite c) cancels exactly."""
    m = c.shape[0]
    terms = h * c
    if m % 2 == 0:
        terms = terms[:, : m // 2] + terms[:, m // 2:]
    return terms.sum(-1) / math.sqrt(m)


class IndRNN(Model):
    """m units with diagonal recurrent weights u, input weights W_in and output weights c."""

    name = "indrnn"
    blocks = ("W_in", "u", "c")
    radius_keys = {"W_in": "w", "u": "u", "c": "c"}
    default_loss = "mse"

    def __init__(self, d: int, m: int, activation_name: str = "tanh", gain: float = 1.5,
                 paired: bool = True):
        check_sizes(d, m, paired)
        if not gain > 0:
            raise ValueError(f"gain = {gain}: the recurrent gain g must be a positive number")
        self.d, self.m, self.width, self.paired, self.gain = d, m, m, paired, float(gain)
        self.activation_name = activation_name
        self.sigma, self.sigma_prime = activation(activation_name)

    def init(self, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Params:
        """Paired initialisation: W_in ~ N(0, 1), u uniform on {-g, +g}, c uniform on {-1, +1};
        the second half copies W_in and u and negates c, so f(X; theta_0) = 0 exactly."""
        gen = generator(seed, "init")
        half = self.m // 2 if self.paired else self.m
        W_in = torch.randn(half, self.d, generator=gen, dtype=torch.float64)
        u = self.gain * (torch.randint(0, 2, (half,), generator=gen).to(torch.float64) * 2 - 1)
        c = torch.randint(0, 2, (half,), generator=gen).to(torch.float64) * 2 - 1
        if self.paired:
            W_in, u, c = torch.cat([W_in, W_in]), torch.cat([u, u]), torch.cat([c, -c])
        return {k: v.to(dtype=dtype, device=device) for k, v in {"W_in": W_in, "u": u, "c": c}.items()}

    def final_state(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """h_T (B, m) for X (B, T, d); differentiable (autograd traces the loop). The drive is
        formed one step at a time, so without autograd the memory is O(B m), whatever T."""
        W_in, u = params["W_in"], params["u"]
        h = self.sigma(input_drive(W_in, X[:, :1])[0])
        for t in range(1, X.shape[1]):
            h = self.sigma(input_drive(W_in, X[:, t:t + 1])[0] + u * h)
        return h

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f(X) (B,) for X (B, T, d)."""
        return readout(self.final_state(params, X), params["c"])

    def pre_activations(self, params: Params, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z, h_T): every pre-activation z_t (T, B, m) and the final state (B, m), without autograd.

        The drive buffer is overwritten in place with z_t = W_in x_t + u * h_{t-1}, so the pass
        allocates one (T, B, m) tensor."""
        with torch.no_grad():
            Z = input_drive(params["W_in"], X)
            u = params["u"]
            h = self.sigma(Z[0])
            for t in range(1, Z.shape[0]):
                h = self.sigma(Z[t].addcmul_(u, h))
        return Z, h

    def _activate_(self, z: torch.Tensor) -> None:
        """z <- sigma(z) in place."""
        if self.activation_name == "tanh":
            torch.tanh(z, out=z)
        else:
            z.copy_(self.sigma(z))

    def states(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """Every hidden state h_t (T, B, m), without autograd: the drive buffer is overwritten in place."""
        with torch.no_grad():
            H = input_drive(params["W_in"], X)
            u = params["u"]
            self._activate_(H[0])
            for t in range(1, H.shape[0]):
                self._activate_(H[t].addcmul_(u, H[t - 1]))
        return H

    def loss_and_grad(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                      loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """Loss and its exact gradient by hand-written backpropagation through time (no autograd).

        One (T, B, m) buffer holds the forward pass (h_t for tanh, whose derivative is 1 - h_t^2;
        z_t otherwise) and is overwritten, step by step from t = T down to 1, with g_t = dL/dz_t."""
        with torch.no_grad():
            u, c = params["u"], params["c"]
            from_states = self.activation_name == "tanh"
            if from_states:
                buffer = self.states(params, X)
                h_T = buffer[-1].clone()
            else:
                buffer, h_T = self.pre_activations(params, X)
            residual = readout(h_T, c) - y
            scale = loss_scale(loss, X.shape[0])
            value = scale * (residual**2).sum()
            weight = (2 * scale / math.sqrt(self.m)) * residual       # dL/df_b / sqrt(m)
            grad_c = h_T.T @ weight
            carry = weight.unsqueeze(1) * c                            # dL/dh_T (B, m)
            u_terms = torch.zeros_like(h_T)                            # sum_t g_t * h_{t-1}, per sample
            for t in range(buffer.shape[0] - 1, -1, -1):
                if from_states:                                        # g = carry (1 - h_t^2)
                    g = torch.addcmul(carry, carry * buffer[t], buffer[t], value=-1)
                    h_prev = buffer[t - 1] if t > 0 else None
                else:
                    g = self.sigma_prime(buffer[t]).mul_(carry)
                    h_prev = self.sigma(buffer[t - 1]) if t > 0 else None
                if h_prev is not None:
                    u_terms.addcmul_(g, h_prev)
                buffer[t].copy_(g)
                carry = g.mul_(u)                                      # dL/dh_{t-1} = u * dL/dz_t
            T, B, m = buffer.shape
            grad_W = buffer.reshape(T * B, m).T @ X.transpose(0, 1).reshape(T * B, -1)
        return value, {"W_in": grad_W, "u": u_terms.sum(0), "c": grad_c}

    def state_jacobian_norms(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """||dh_T / dh_t|| for t = 1..T, averaged over the batch: (T,), the last entry 1.

        The recurrence is diagonal, so dh_T/dh_t = diag(prod_{s=t+1..T} sigma'(z_s) * u) and its
        operator norm is the largest |entry| over the units. This product of T - t per-step Jacobians
        is what makes backpropagation through time expand (g Lip(sigma) > 1) or contract with T."""
        with torch.no_grad():
            Z, _ = self.pre_activations(params, X)
            factors = (self.sigma_prime(Z[1:]) * params["u"]).abs()            # (T-1, B, m)
            log_products = torch.log(factors).flip(0).cumsum(0).flip(0)         # sum over s >= t+1
            log_products = torch.cat([log_products, torch.zeros_like(Z[:1])])
            return log_products.amax(-1).exp().mean(-1)
