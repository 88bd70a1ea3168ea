"""The independently recurrent network (IndRNN) of the recurrent baseline (spec recurrent-baseline.md, s. 1).

For a sequence X (T, d) the m units evolve with a diagonal recurrence and the output has the same
form as the kernel-regime Transformer's:

    h_0 = 0,   h_t = sigma(W_in x_t + u * h_{t-1}),   f(X) = m^{-1/2} sum_i c_i h_{T,i}

Parameters: W_in (m, d), u (m,), c (m,). The recurrence is the hot loop. `loss_and_grad` is
backpropagation through time written out: with z_t the pre-activations, D_t = sigma'(z_t)
(= 1 - h_t^2 for tanh), g_t = dL/dz_t and w_b = dL/df_b,

    g_T = D_T * dL/dh_T,   g_t = D_t * u * g_{t+1},   dL/dh_T = w_b c / sqrt(m)
    dL/dW_in = sum_{b,t} g_t x_t^T,   dL/du = sum_{b,t>=2} g_t * h_{t-1},   dL/dc = sum_b w_b h_T / sqrt(m)

Since u is diagonal, the recursion is a reverse cumulative product: in reversed time k = T - t,
with Q_0 = dL/dh_T * D_T and Q_k = u * D_{T-k}, g_{T-k} = Q_0 * Q_1 * ... * Q_k (elementwise).
It is taken one factor per step from t = T down, the association order of the recursion itself,
so no partial product overflows that the recursion would not (g Lip(sigma) > 1 expands it).

On the CPU the forward and `loss_and_grad` run in a fused compiled kernel (models/native/indrnn.cpp):
the time loop runs inside it for a few samples at a time, their states stay in cache and the
backward sweep follows at once; its working memory is O(threads T m) for a training step and
O(threads m) for a forward pass. `fused=False`, autograd, torch.func transforms and CUDA use the
PyTorch formulation below, which computes the same numbers.

Layout of the PyTorch path (measured by benchmarks/bench_indrnn_recurrence.py --variants): the
forward keeps one (B, m) tensor per step (h_t for tanh, z_t otherwise) and the backward consumes them from t = T down, a few kernels per
step on data that stays in cache, no autograd graph. Vectorising over time loses on the CPU at the
experiments' sizes (B in the thousands; benchmark --variants: several times slower, four times the
memory; it wins only on tiny batches, where Python overhead dominates): torch.cumprod along the time
axis is far slower than T in-place products, and every whole-(T, B, m) pass streams through memory.
Its peak memory for a training step is O(T B m), like the Transformer's attention (O(T B m)).

Stacked runs (the trainer's seeds, params (S, ...), X (S, B, T, d)) go through `loss_and_grad_runs`
and `forward_runs`, not vmap: one run axis on every tensor, the drives of all steps as one product
and each step's state written over its drive, so a step costs a few plain operations whatever S.
On a GPU, where every operation is a launch, this is what bounds a step; on the CPU it serves the
stacked small runs (attnlab.run.stack_size), where vmap's per-operation cost dominates.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from attnlab.config import IndRNNConfig
from attnlab.models.activations import activation
from attnlab.models.base import Model, Params, SampleFlops, check_sizes
from attnlab.models.native import indrnn as fused_kernel
from attnlab.numerics.statistics import euclidean_norms
from attnlab.seeding import generator
from attnlab.models.losses import loss_scale


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


def transformed(*tensors: torch.Tensor) -> bool:
    """Whether a torch.func transform (vmap over stacked runs) tracks any of these tensors: out=
    operations are then refused, and each step is computed into a fresh tensor instead."""
    return any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def step_drives(W_in: torch.Tensor, X: torch.Tensor) -> Iterator[torch.Tensor]:
    """W_in x_t (B, m) for t = 1..T in turn, from W_in (m, d), X (B, T, d), without autograd.

    Every step is written into the same (B, m) tensor, valid until the next step (it stays in
    cache: products written into fresh memory are markedly slower); for even m as two
    equal-shaped products side by side, like `input_drive`. Under vmap each step is a fresh tensor
    (the same two products, concatenated)."""
    m, B = W_in.shape[0], X.shape[0]
    half = m // 2
    if transformed(W_in, X):
        for x in X.unbind(1):
            yield x @ W_in.T if m % 2 else torch.cat([x @ W_in[:half].T, x @ W_in[half:].T], dim=-1)
        return
    drive = torch.empty(B, m, dtype=X.dtype, device=X.device)
    for x in X.unbind(1):
        if m % 2:
            torch.mm(x, W_in.T, out=drive)
        else:
            torch.mm(x, W_in[:half].T, out=drive[:, :half])
            torch.mm(x, W_in[half:].T, out=drive[:, half:])
        yield drive


def readout(h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """m^{-1/2} sum_i c_i h_i (..., B) from h (..., B, m), c (..., 1, m) or (m,); for even m unit i and
    unit i + m/2 are added first, so a paired initialisation (equal h, opposite c) cancels exactly."""
    m = c.shape[-1]
    terms = h * c
    if m % 2 == 0:
        terms = terms[..., : m // 2] + terms[..., m // 2:]
    return terms.sum(-1) / math.sqrt(m)


def run_drives(W_in: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """W_in x_t of S stacked runs for every step and sample: (T, S, B, m) from W_in (S, m, d) and the
    tokens time-major, (T, S, B, d); for even m the two halves as two equal-shaped products, like
    `input_drive`."""
    m = W_in.shape[1]
    if m % 2:
        return torch.matmul(tokens, W_in.transpose(1, 2))
    half = m // 2
    return torch.cat([torch.matmul(tokens, W_in[:, :half].transpose(1, 2)),
                      torch.matmul(tokens, W_in[:, half:].transpose(1, 2))], dim=-1)


def time_major(X: torch.Tensor) -> torch.Tensor:
    """The tokens of S stacked runs, X (S, B, T, d), as one contiguous (T, S, B, d) tensor."""
    return X.permute(2, 0, 1, 3).contiguous()


class IndRNN(Model):
    """m units with diagonal recurrent weights u, input weights W_in and output weights c."""

    config_class = IndRNNConfig
    blocks = ("W_in", "u", "c")
    radius_keys = {"W_in": "w", "u": "u", "c": "c"}
    sequence_block = "u"   # the block that mixes positions (E4 reports its gradient norm)
    has_output_gradient_norms = True
    has_run_axis = True
    default_loss = "mse"

    def __init__(self, d: int, m: int, activation_name: str = "tanh", gain: float = 1.5,
                 paired: bool = True, fused: bool = True):
        check_sizes(d, m, paired)
        if not gain > 0:
            raise ValueError(f"gain = {gain}: the recurrent gain g must be a positive number")
        self.d, self.m, self.width, self.paired, self.gain = d, m, m, paired, float(gain)
        self.fused = fused
        self.activation_name = activation_name
        self.sigma, self.sigma_prime = activation(activation_name)

    @classmethod
    def from_config(cls, config: IndRNNConfig, d: int, T: int | None = None, outputs: int = 1) -> "IndRNN":
        """The network of `config` for tokens of dimension d (any T; one scalar output)."""
        return cls(d=d, m=config.m, activation_name=config.activation, gain=config.gain, paired=config.paired)

    def sample_flops(self, T: int) -> SampleFlops:
        """Forward: the input projection W_in x_t (T d m) and the recurrence (T m); backward the same
        again (the gradient of W_in and the reverse sweep)."""
        forward = T * self.m * (self.d + 1)
        return SampleFlops(2 * forward, 4 * forward)

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

    def _use_fused(self, params: Params, *tensors: torch.Tensor) -> bool:
        return self.fused and fused_kernel.supports([*params.values(), *tensors], self.activation_name, self.d)

    def _unit_groups(self) -> int:
        """Unit groups of the fused kernel: the two halves for even m, summed apart in the read-out
        like `readout` pairs them (a paired initialisation then cancels exactly)."""
        return 2 if self.m % 2 == 0 else 1

    def final_state(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """h_T (B, m) for X (B, T, d); differentiable (autograd traces the loop) when a parameter or
        X requires a gradient. The drive is formed one step at a time: without autograd the memory
        is O(B m), whatever T."""
        W_in, u = params["W_in"], params["u"]
        if not (torch.is_grad_enabled() and any(v.requires_grad for v in (W_in, u, X))):
            return self._recurrence(params, X, keep=False)[0]
        h = self.sigma(input_drive(W_in, X[:, :1])[0])
        for t in range(1, X.shape[1]):
            h = self.sigma(input_drive(W_in, X[:, t:t + 1])[0] + u * h)
        return h

    def _recurrence(self, params: Params, X: torch.Tensor,
                    keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The forward without autograd for X (B, T, d): (h_T (B, m), saved), where saved holds, if
        `keep`, the T tensors (B, m) the backward needs: h_t for tanh (sigma' = 1 - h^2), z_t otherwise.

        Each step writes z_t = W_in x_t + u * h_{t-1} and then, for tanh, h_t into one new (B, m) tensor."""
        u = params["u"]
        tanh = self.activation_name == "tanh"
        saved: list[torch.Tensor] = []
        h = None
        with torch.no_grad():
            for drive in step_drives(params["W_in"], X):
                z = drive.clone() if h is None else torch.addcmul(drive, u, h)
                if keep:
                    saved.append(z)
                h = z.tanh_() if tanh else self.sigma(z)
        return h, saved

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f(X) (B,) for X (B, T, d)."""
        if self._use_fused(params, X):
            return fused_kernel.forward(params, X, self._unit_groups(), self.activation_name)
        return readout(self.final_state(params, X), params["c"])

    def _run_recurrence(self, params: Params, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward of S stacked runs without autograd, for tokens (T, S, B, d): (Z, H), every z_t and
        h_t (T, S, B, m), the states in place of the drives (H is Z) for tanh. The drives of all steps
        are one product: a few operations per step, whatever S (the PyTorch path's layout on a GPU,
        where each operation costs a launch)."""
        tanh = self.activation_name == "tanh"
        with torch.no_grad():
            Z = run_drives(params["W_in"], tokens)
            H = Z if tanh else torch.empty_like(Z)
            u = params["u"].unsqueeze(1)                                 # (S, 1, m)
            for t in range(Z.shape[0]):
                if t > 0:
                    Z[t].addcmul_(u, H[t - 1])
                if tanh:
                    Z[t].tanh_()
                else:
                    H[t] = self.sigma(Z[t])
        return Z, H

    def forward_runs(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f of S stacked runs (S, B) for params (S, ...) and X (S, B, T, d)."""
        return readout(self._run_recurrence(params, time_major(X))[1][-1], params["c"].unsqueeze(1))

    def loss_and_grad_runs(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                           loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """`loss_and_grad` of S stacked runs: losses (S,) and gradients W_in (S, m, d), u (S, m),
        c (S, m), for X (S, B, T, d), y (S, B); the same backward sweep, every step on all runs."""
        tanh = self.activation_name == "tanh"
        tokens = time_major(X)
        with torch.no_grad():
            Z, H = self._run_recurrence(params, tokens)
            u, c = params["u"].unsqueeze(1), params["c"].unsqueeze(1)      # (S, 1, m)
            residual = readout(H[-1], c) - y                                # (S, B)
            scale = loss_scale(loss, X.shape[1])
            value = scale * (residual**2).sum(-1)
            weight = (2 * scale / math.sqrt(self.m)) * residual             # dL/df_b / sqrt(m)
            grad_c = (H[-1] * weight.unsqueeze(-1)).sum(1)
            grad_W = torch.zeros_like(params["W_in"])
            u_terms = torch.zeros_like(H[-1])                               # sum_t g_t * h_{t-1}
            carry = weight.unsqueeze(-1) * c                                # dL/dh_T (S, B, m)
            for t in range(Z.shape[0] - 1, -1, -1):
                if tanh:                                                    # g_t in h_t's storage
                    g = torch.addcmul(carry, carry, H[t].square(), value=-1, out=H[t])
                else:
                    g = self.sigma_prime(Z[t]).mul_(carry)
                if t > 0:
                    u_terms.addcmul_(g, H[t - 1])
                grad_W.baddbmm_(g.transpose(1, 2), tokens[t])
                carry = g * u
        return value, {"W_in": grad_W, "u": u_terms.sum(1), "c": grad_c}

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

    def states(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """Every hidden state h_t = sigma(z_t) (T, B, m), without autograd."""
        with torch.no_grad():
            return self.sigma(self.pre_activations(params, X)[0])

    def loss_and_grad(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                      loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """Loss and its exact gradient for X (B, T, d), y (B,) by hand-written backpropagation through
        time (no autograd): grads W_in (m, d), u (m,), c (m,). The backward runs from t = T down,
        carrying dL/dh_t (B, m) and multiplying in one factor u * D_t per step (module docstring)."""
        if self._use_fused(params, X, y):
            return fused_kernel.loss_and_grad(params, X, y, loss_scale(loss, X.shape[0]), self._unit_groups(),
                                              self.activation_name)
        with torch.no_grad():
            u, c = params["u"], params["c"]
            tanh = self.activation_name == "tanh"
            h_T, saved = self._recurrence(params, X, keep=True)
            residual = readout(h_T, c) - y
            scale = loss_scale(loss, X.shape[0])
            value = scale * (residual**2).sum()
            weight = (2 * scale / math.sqrt(self.m)) * residual       # dL/df_b / sqrt(m)
            grad_c = h_T.T @ weight
            grad_W = torch.zeros_like(params["W_in"])
            u_terms = torch.zeros_like(h_T)                            # sum_t g_t * h_{t-1}, per sample
            carry = weight.unsqueeze(1) * c                            # dL/dh_T (B, m)
            inputs = X.unbind(1)
            in_place = not transformed(X, *params.values())   # vmap: no out=, no batched addmm_
            for t in range(len(inputs) - 1, -1, -1):
                step = saved.pop()                      # h_t (tanh) or z_t, freed after this step
                if tanh:                                # g = carry (1 - h_t^2), in h_t's storage
                    square = step.mul_(step)
                    g = (torch.addcmul(carry, carry, square, value=-1, out=step) if in_place
                         else torch.addcmul(carry, carry, square, value=-1))
                else:
                    g = self.sigma_prime(step).mul_(carry)
                if t > 0:
                    previous = saved[-1] if tanh else self.sigma(saved[-1])
                    u_terms = u_terms.addcmul_(g, previous) if in_place else torch.addcmul(u_terms, g, previous)
                grad_W = grad_W.addmm_(g.T, inputs[t]) if in_place else torch.addmm(grad_W, g.T, inputs[t])
                carry = g.mul_(u)                                      # dL/dh_{t-1} = u * dL/dz_t
        return value, {"W_in": grad_W, "u": u_terms.sum(0), "c": grad_c}

    def output_gradient_norms(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """||grad_theta f(X_b)|| for every sample of X (B, T, d): (B,) (module `output_gradient_norms`)."""
        return output_gradient_norms(self, params, X)

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


def output_gradient_norms(model: IndRNN, params: Params, X: torch.Tensor) -> torch.Tensor:
    """||grad_theta f(X_b)|| for every sample of X (B, T, d): (B,), by per-sample backpropagation
    through time without autograd. With D_t = sigma'(z_t) and g_T = c D_T / sqrt(m),
    g_t = u D_t g_{t+1}: df/dW_in = sum_t g_t x_t^T, df/du = sum_{t>=2} g_t h_{t-1}, df/dc = h_T / sqrt(m).
    Memory O(T B m + B m d)."""
    with torch.no_grad():
        Z, h_T = model.pre_activations(params, X)                 # (T, B, m), (B, m)
        u = params["u"]
        r = 1 / math.sqrt(model.m)
        B, T, d = X.shape
        grad_W = torch.zeros(B, model.m, d, dtype=X.dtype, device=X.device)
        grad_u = torch.zeros_like(h_T)
        carry = (params["c"] * r).expand_as(h_T)                  # df/dh_T
        for t in range(T - 1, -1, -1):
            g = carry * model.sigma_prime(Z[t])                   # df/dz_t (B, m)
            grad_W += g.unsqueeze(-1) * X[:, t].unsqueeze(1)
            if t > 0:
                grad_u += g * model.sigma(Z[t - 1])
            carry = g * u
        norms = (grad_W.pow(2).sum((1, 2)) + grad_u.pow(2).sum(1) + (h_T * r).pow(2).sum(1)).sqrt()
        if bool(torch.isinf(norms).any()):   # squares beyond the dtype (gain > 1, long sequences)
            norms = euclidean_norms(torch.cat([grad_W.reshape(B, -1), grad_u, h_T * r], dim=1))
        return norms
