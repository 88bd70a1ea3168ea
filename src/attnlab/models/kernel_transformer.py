"""The multi-head kernel-regime Transformer of Arda, Cayci & Eryilmaz (AISTATS 2026).

For a sequence X (T, d) with query token x_T = X[-1], head i computes

    z_it = x_t^T W_i x_T,   p_i = softmax_t(z_i),   a_i = sum_t p_it x_t,   s_i = U_i^T a_i

and the network is f(X) = m^{-1/2} sum_i c_i sigma(s_i). Parameters: W (m, d, d), U (m, d), c (m,).
The gradients are written out (spec section 1), so a training step never builds an autograd graph:

    df/dc_i = sigma(s_i)/sqrt(m),  df/dU_i = c_i sigma'(s_i) a_i/sqrt(m),
    df/dW_i = c_i sigma'(s_i) (M_i U_i) x_T^T/sqrt(m),   M_i = Cov_{p_i}(x)

On the CPU both passes run in a fused compiled kernel (models/native/kernel_transformer.cpp) that keeps
every (T, heads) intermediate in cache; `fused=False`, autograd, torch.func transforms and CUDA use the
PyTorch formulation below, which computes the same numbers. With `sdpa=True` that formulation takes
its attention from one fused scaled_dot_product_attention call (`fused_head_moments`) instead of
materialising (B, T, heads) tensors: a candidate for the GPU, off until a GPU run measures it.

Its NTK has a structured form (spec ntk.md, section 2) that never builds a per-sample gradient:

    K = Phi_c Phi_c^T + Phi_u Phi_u^T + (Phi_g Phi_g^T) * (X_T X_T^T)      (* elementwise)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnlab.config import KernelTransformerConfig
from attnlab.models.activations import activation
from attnlab.models.base import Model, Params, SampleFlops, check_sizes
from attnlab.models.native import kernel_transformer as fused_kernel
from attnlab.seeding import generator
from attnlab.models.losses import loss_scale


@dataclass
class HeadFeatures:
    """Per-sample, per-head quantities of the forward pass (B samples, m heads).

    s (B, m): read-out pre-activations; a (B, m, d): attended tokens; p (B, T, m): attention;
    pxU (B, T, m): attention times the read-out of each token, p_it (x_t . U_i); xT (B, d): queries.
    """

    s: torch.Tensor
    a: torch.Tensor
    p: torch.Tensor
    pxU: torch.Tensor
    xT: torch.Tensor


@dataclass
class NTKFeatures:
    """Per-sample NTK features (spec ntk.md, section 2): c (B, m), u (B, m d), g (B, m d), xT (B, d)."""

    c: torch.Tensor
    u: torch.Tensor
    g: torch.Tensor
    xT: torch.Tensor


def head_features(W: torch.Tensor, U: torch.Tensor, X: torch.Tensor) -> HeadFeatures:
    """Attention and read-out of every head: W (m, d, d), U (m, d), X (B, T, d)."""
    xT = X[:, -1]
    Wx = torch.einsum("mde,be->bdm", W, xT)             # W_i x_T, laid out (B, d, m)
    p = torch.softmax(torch.bmm(X, Wx), dim=1)           # (B, T, m): softmax over tokens
    a = torch.bmm(p.transpose(1, 2), X)                  # (B, m, d)
    pxU = p * torch.matmul(X, U.T)                       # (B, T, m)
    return HeadFeatures(s=pxU.sum(1), a=a, p=p, pxU=pxU, xT=xT)


def covariance_times_readout(X: torch.Tensor, h: HeadFeatures) -> torch.Tensor:
    """g_i = M_i U_i = sum_t p_it (x_t . U_i) x_t - s_i a_i for every sample and head: (B, m, d)."""
    return torch.bmm(h.pxU.transpose(1, 2), X) - h.s.unsqueeze(-1) * h.a


def fused_head_moments(W: torch.Tensor, U: torch.Tensor, X: torch.Tensor,
                       covariance: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """s (B, m), a (B, m, d) and, with `covariance`, g = M U (B, m, d) from one call of torch's
    scaled_dot_product_attention per sample (queries W_i x_T, keys x_t, values [x_t, upper triangle
    of x_t x_t^T]), so that no (B, T, m) tensor reaches memory. W (m, d, d), U (m, d), X (B, T, d).
    Last dimensions are zero-padded to multiples of 8, which the fused backends require."""
    B, _, d = X.shape
    m = W.shape[0]
    values = X
    if covariance:
        rows, cols = torch.triu_indices(d, d, device=X.device)
        values = torch.cat([X, X[..., rows] * X[..., cols]], dim=-1)
    width, qk = -(-values.shape[-1] // 8) * 8, -(-d // 8) * 8
    queries = F.pad(torch.einsum("mde,be->bmd", W, X[:, -1]), (0, qk - d))
    with warnings.catch_warnings():   # SDPA notes each backend it cannot use (the CPU's flash kernel: equal widths)
        warnings.filterwarnings("ignore", r".*(attention|Attention).*", UserWarning)
        out = F.scaled_dot_product_attention(queries.unsqueeze(1), F.pad(X, (0, qk - d)).unsqueeze(1),
                                             F.pad(values, (0, width - values.shape[-1])).unsqueeze(1),
                                             scale=1.0).squeeze(1)              # (B, m, width)
    a = out[..., :d]
    s = (a * U).sum(-1)
    if not covariance:
        return s, a, None
    second = out.new_zeros(B, m, d, d)                                          # E_p[x x^T]
    second[..., rows, cols] = out[..., d:d + rows.numel()]
    second[..., cols, rows] = out[..., d:d + rows.numel()]
    return s, a, torch.einsum("bmde,me->bmd", second, U) - s.unsqueeze(-1) * a


class KernelTransformer(Model):
    """m softmax heads with combined query-key matrices, trained read-outs and output weights."""

    config_class = KernelTransformerConfig
    blocks = ("W", "U", "c")
    radius_keys = {"W": "w", "U": "u", "c": "c"}
    sequence_block = "W"   # the block that mixes positions (E4 reports its gradient norm)
    has_structured_ntk = True
    has_output_gradient_norms = True
    default_loss = "mse"

    def __init__(self, d: int, m: int, activation_name: str = "tanh", paired: bool = True, fused: bool = True,
                 sdpa: bool | None = False):
        """fused: the compiled CPU kernel where it applies; sdpa: the PyTorch path takes its attention
        from one scaled_dot_product_attention call (`fused_head_moments`) instead of materialising it
        (True; None: on CUDA tensors only). A GPU candidate: benchmarks/bench_attention_moments.py."""
        check_sizes(d, m, paired)
        self.d, self.m, self.width, self.paired, self.fused, self.sdpa = d, m, m, paired, fused, sdpa
        self.activation_name = activation_name
        self.sigma, self.sigma_prime = activation(activation_name)

    @classmethod
    def from_config(cls, config: KernelTransformerConfig, d: int, T: int | None = None,
                    outputs: int = 1) -> "KernelTransformer":
        """The model of `config` for tokens of dimension d (any T; one scalar output)."""
        return cls(d=d, m=config.m, activation_name=config.activation, paired=config.paired)

    def sample_flops(self, T: int) -> SampleFlops:
        """Per head: W_i x_T (d^2), logits (T d), read-outs x_t . U_i (T d) forward; the attended
        token and M_i U_i (2 T d) and the outer product of the W gradient (d^2) backward."""
        d = self.d
        forward = d * d + 2 * T * d
        return SampleFlops(2 * self.m * forward, 2 * self.m * (forward + 2 * T * d + d * d))

    def ntk_pair_flops(self, T: int) -> float:
        """Phi_c, Phi_u and Phi_g products (m, m d, m d) and the query product x_T . x_T' (d)."""
        return 2 * (self.m * (1 + 2 * self.d) + self.d)

    def init(self, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Params:
        """Paired Gaussian initialisation (spec section 2): f(X; theta_0) = 0 exactly."""
        gen = generator(seed, "init")
        half = self.m // 2 if self.paired else self.m
        W = torch.randn(half, self.d, self.d, generator=gen, dtype=torch.float64)
        U = torch.randn(half, self.d, generator=gen, dtype=torch.float64)
        c = torch.randint(0, 2, (half,), generator=gen).to(torch.float64) * 2 - 1
        if self.paired:
            W, U, c = torch.cat([W, W]), torch.cat([U, U]), torch.cat([c, -c])
        return {k: v.to(dtype=dtype, device=device) for k, v in {"W": W, "U": U, "c": c}.items()}

    def head_groups(self) -> list[slice]:
        """Heads are computed in groups. A paired model uses its two halves, computed by separate,
        identically shaped calls: twin heads then see bitwise identical arithmetic and the output
        is exactly 0 at the paired initialisation (computing all heads in one call does not give
        this, since vectorised kernels round the tails of a row differently)."""
        half = self.m // 2
        return [slice(0, half), slice(half, self.m)] if self.paired else [slice(0, self.m)]

    def group_params(self, params: Params) -> list[tuple[slice, Params]]:
        """Each head group's parameters as fresh (equally aligned) copies: BLAS kernels may take
        alignment-dependent paths, so twin halves must not be views at different offsets."""
        if not self.paired:
            return [(slice(0, self.m), params)]
        return [(heads, {k: v[heads].clone() for k, v in params.items()}) for heads in self.head_groups()]

    def _use_fused(self, params: Params, *tensors: torch.Tensor) -> bool:
        return self.fused and fused_kernel.supports([*params.values(), *tensors], self.activation_name, self.d)

    def loops_over_runs(self, params: Params, X: torch.Tensor) -> bool:
        return self._use_fused(params, X)

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f(X) (B,) for X (B, T, d)."""
        if self._use_fused(params, X):
            return fused_kernel.forward(params, X, len(self.head_groups()), self.activation_name)
        total = 0
        for _, p in self.group_params(params):
            s = fused_head_moments(p["W"], p["U"], X, covariance=False)[0] if self._use_sdpa(X) else \
                head_features(p["W"], p["U"], X).s
            total = total + self.sigma(s) @ p["c"]
        return total / math.sqrt(self.m)

    def _use_sdpa(self, X: torch.Tensor) -> bool:
        return X.is_cuda if self.sdpa is None else self.sdpa

    def _moments(self, p: Params, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """s (B, heads), a (B, heads, d), g = M U (B, heads, d) of one head group."""
        if self._use_sdpa(X):
            return fused_head_moments(p["W"], p["U"], X)
        h = head_features(p["W"], p["U"], X)
        return h.s, h.a, covariance_times_readout(X, h)

    def loss_and_grad(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                      loss: str = "mse") -> tuple[torch.Tensor, Params]:
        """Loss and its exact gradient from the hand-derived formulas, without autograd."""
        if self._use_fused(params, X, y):
            return fused_kernel.loss_and_grad(params, X, y, loss_scale(loss, X.shape[0]), len(self.head_groups()),
                                              self.activation_name)
        groups = [(p, self._moments(p, X)) for _, p in self.group_params(params)]
        f = sum(self.sigma(s) @ p["c"] for p, (s, _, _) in groups) / math.sqrt(self.m)
        residual = f - y
        scale = loss_scale(loss, X.shape[0])
        weight = (2 * scale / math.sqrt(self.m)) * residual             # dL/df_b / sqrt(m)
        grads: dict[str, list[torch.Tensor]] = {"W": [], "U": [], "c": []}
        for p, (s, a, g) in groups:
            e = weight.unsqueeze(1) * p["c"] * self.sigma_prime(s)            # (B, heads)
            grads["c"].append(self.sigma(s).T @ weight)
            grads["U"].append(torch.einsum("bm,bmd->md", e, a))
            grads["W"].append(torch.einsum("bmd,be->mde", e.unsqueeze(-1) * g, X[:, -1]))
        return scale * (residual**2).sum(), {k: torch.cat(v) for k, v in grads.items()}

    def per_sample_gradients(self, params: Params, X: torch.Tensor) -> Params:
        """df(X_b)/dtheta for every sample: W (B, m, d, d), U (B, m, d), c (B, m). For tests and
        small problems; the trainers and structured kernels never build these."""
        h = head_features(params["W"], params["U"], X)
        r = 1 / math.sqrt(self.m)
        e = params["c"] * self.sigma_prime(h.s) * r
        g = covariance_times_readout(X, h)
        return {"W": torch.einsum("bmd,be->bmde", e.unsqueeze(-1) * g, h.xT),
                "U": e.unsqueeze(-1) * h.a,
                "c": self.sigma(h.s) * r}

    def ntk_features(self, params: Params, X: torch.Tensor) -> NTKFeatures:
        """Per-sample NTK features of X (B, T, d): Phi_c (B, m) = sigma(s)/sqrt(m),
        Phi_u (B, m d) = c sigma'(s) a/sqrt(m), Phi_g (B, m d) = c sigma'(s) M U/sqrt(m), x_T (B, d)."""
        h = head_features(params["W"], params["U"], X)
        r = 1 / math.sqrt(self.m)
        e = (params["c"] * self.sigma_prime(h.s) * r).unsqueeze(-1)    # (B, m, 1)
        g = covariance_times_readout(X, h)
        B = X.shape[0]
        return NTKFeatures(c=self.sigma(h.s) * r, u=(e * h.a).reshape(B, -1),
                           g=(e * g).reshape(B, -1), xT=h.xT)

    def ntk_blocks(self, params: Params, X1: torch.Tensor, X2: torch.Tensor | None = None,
                   chunk_size: int = 1024) -> dict[str, torch.Tensor]:
        """Exact empirical NTK per block, {"W", "U", "c"} -> (N1, N2), from the structured form:
        K_c = Phi_c Phi_c'^T, K_U = Phi_u Phi_u'^T, K_W = (Phi_g Phi_g'^T) * (X_T X_T'^T).
        Cost O(N1 N2 m d), memory O((N1 + N2) m d): features are built `chunk_size` samples at a time."""
        F1 = self._features_in_chunks(params, X1, chunk_size)
        F2 = F1 if X2 is None else self._features_in_chunks(params, X2, chunk_size)
        return {"W": (F1.g @ F2.g.T) * (F1.xT @ F2.xT.T), "U": F1.u @ F2.u.T, "c": F1.c @ F2.c.T}

    def output_gradient_norms(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """||grad_theta f(X_b)|| for every sample of X (B, T, d): (B,) (module `output_gradient_norms`)."""
        return output_gradient_norms(self, params, X)

    def smoothness_bound(self, params: Params, token_norm: float) -> float:
        """The analytic bound on ||grad_theta f(X)|| for tokens of norm <= token_norm (module
        `output_gradient_bound`); it does not depend on T."""
        return output_gradient_bound(self, params, token_norm)

    def _features_in_chunks(self, params: Params, X: torch.Tensor, chunk_size: int) -> NTKFeatures:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size = {chunk_size}: must be a positive integer")
        parts = [self.ntk_features(params, X[i:i + chunk_size]) for i in range(0, X.shape[0], chunk_size)]
        return NTKFeatures(*(torch.cat([getattr(p, f) for p in parts]) for f in ("c", "u", "g", "xT")))


def output_gradient_norms(model: KernelTransformer, params: Params, X: torch.Tensor,
                          chunk_size: int = 1024) -> torch.Tensor:
    """||grad_theta f(X_b)|| for every sample of X (B, T, d): (B,), from the structured features,
    never building a per-sample gradient: ||grad f||^2 = ||Phi_c||^2 + ||Phi_u||^2 + ||Phi_g||^2 ||x_T||^2
    (the W block of head i is Phi_g,i x_T^T, a rank-one matrix)."""
    parts = []
    with torch.no_grad():
        for i in range(0, X.shape[0], chunk_size):
            F = model.ntk_features(params, X[i:i + chunk_size])
            parts.append(F.c.pow(2).sum(1) + F.u.pow(2).sum(1) + F.g.pow(2).sum(1) * F.xT.pow(2).sum(1))
    return torch.cat(parts).sqrt()


def output_gradient_bound(model: KernelTransformer, params: Params, token_norm: float = 1.0) -> float:
    """A bound on max_X ||grad_theta f(X)|| over all sequences whose tokens have norm <= R = token_norm,
    whatever their length T; it depends on the parameters c, U only.

    Per head, ||a_i|| <= R (a convex combination of tokens), ||M_i|| <= R^2 (M_i = Cov_p(x) is below
    E_p[x x^T]), ||x_T|| <= R and |s_i| <= R ||U_i||, so with S = sup|sigma|, L = sup|sigma'|:

        ||grad f||^2 = (1/m) sum_i sigma(s_i)^2 + c_i^2 sigma'(s_i)^2 (||a_i||^2 + ||M_i U_i||^2 ||x_T||^2)
                    <= (1/m) sum_i min(S, L R ||U_i||)^2 + c_i^2 L^2 (R^2 + R^6 ||U_i||^2).
    """
    from attnlab.models.activations import ACTIVATION_BOUNDS

    sup_sigma, lip = ACTIVATION_BOUNDS[model.activation_name]
    R = float(token_norm)
    U_norm = params["U"].double().norm(dim=-1)
    c2 = params["c"].double().pow(2)
    terms = (torch.clamp(lip * R * U_norm, max=sup_sigma).pow(2)
             + c2 * lip**2 * (R**2 + R**6 * U_norm.pow(2)))
    return float(terms.mean().sqrt())
