"""The shallow encoder-only Transformer of Wu, Liu, Chrysos & Cevher (NeurIPS 2023).

For a sequence X (T, d) and width d_m (spec shallow-encoder.md, section 1):

    Q = c_Q X W_Q^T,  Kk = c_K X W_K^T,  V = c_V X W_V^T          (T, d_m)
    L = tau_0 Q Kk^T,  S = row_softmax(L),  A = S V                 (T, T), (T, T), (T, d_m)
    z = phi(A)          flatten: vec(A) (T d_m,), row-major;  mean: mean of the rows of A (d_m,)
    h = c_H W_H z,  f = tau_1 w_O^T relu(h)                         (d_m,), scalar or (classes,)

tau_0 = d_m^(-p) (p = 1/2 "sqrt", p = 1 "linear", or any p >= 0). The multipliers c_* and tau_1 are
1 under LeCun and He initialisation; under NTK initialisation the weights are N(0, 1) and every
layer's input is multiplied by 1/sqrt(fan_in): c_Q = c_K = c_V = d^(-1/2), c_H = fan_in(W_H)^(-1/2),
tau_1 = d_m^(-1/2). Gradients with respect to the raw weights carry the multiplier once, so NTK
blocks carry it squared.

The gradient of the loss is written out (see `loss_and_grad`), and `ntk_blocks` gives the exact
empirical NTK per parameter block from per-sample T x T quantities, without ever forming a
per-sample gradient (spec ntk.md, section 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnlab.config import ShallowEncoderConfig
from attnlab.models.base import Model, Params, SampleFlops
from attnlab.seeding import generator
from attnlab.models.losses import loss_scale

PHIS = ("flatten", "mean")
INITS = ("lecun", "he", "ntk")
SCALINGS = {"sqrt": 0.5, "linear": 1.0}


def logit_exponent(scaling: str | float) -> float:
    """p of tau_0 = d_m^(-p) for a scaling "sqrt" (1/2), "linear" (1) or a number p >= 0."""
    if isinstance(scaling, str):
        if scaling not in SCALINGS:
            raise ValueError(f"scaling = {scaling!r}: allowed are 'sqrt', 'linear' or a number p >= 0")
        return SCALINGS[scaling]
    if not (isinstance(scaling, (int, float)) and math.isfinite(scaling) and scaling >= 0):
        raise ValueError(f"scaling = {scaling!r}: allowed are 'sqrt', 'linear' or a number p >= 0")
    return float(scaling)


@dataclass
class EncoderState:
    """Every intermediate of a forward pass on B sequences.

    Q, Kk, V, A (B, T, d_m); L logits and S attention (B, T, T); z (B, fan_in) the input of W_H;
    h (B, d_m) pre-activations; r = relu(h) (B, d_m) the read-out features; f (B,) or (B, classes).
    """

    Q: torch.Tensor
    Kk: torch.Tensor
    V: torch.Tensor
    L: torch.Tensor
    S: torch.Tensor
    A: torch.Tensor
    z: torch.Tensor
    h: torch.Tensor
    r: torch.Tensor
    f: torch.Tensor


class ShallowEncoder(Model):
    """Self-attention, a ReLU layer W_H on phi(A) and a linear read-out; all five blocks trained."""

    config_class = ShallowEncoderConfig
    blocks = ("W_Q", "W_K", "W_V", "W_H", "w_O")
    radius_keys: dict[str, str] = {}
    sequence_block = None   # no single block mixes positions
    has_structured_ntk = True
    has_forward_state = True
    default_loss = "half-mse"

    def __init__(self, d: int, T: int, d_m: int, phi: str = "flatten", scaling: str | float = "sqrt",
                 init: str = "lecun", outputs: int = 1):
        for field, value in (("d", d), ("T", T), ("d_m", d_m), ("outputs", outputs)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} = {value!r}: must be a positive integer")
        if phi not in PHIS:
            raise ValueError(f"phi = {phi!r}: allowed are {', '.join(PHIS)}")
        if init not in INITS:
            raise ValueError(f"init = {init!r}: allowed are {', '.join(INITS)}")
        self.d, self.T, self.d_m, self.width = d, T, d_m, d_m
        self.phi, self.init_scheme, self.outputs = phi, init, outputs
        self.p = logit_exponent(scaling)
        self.tau_0 = d_m ** (-self.p)
        self.fan_in_H = T * d_m if phi == "flatten" else d_m
        ntk = init == "ntk"
        self.multipliers = {
            "W_Q": d**-0.5 if ntk else 1.0, "W_K": d**-0.5 if ntk else 1.0, "W_V": d**-0.5 if ntk else 1.0,
            "W_H": self.fan_in_H**-0.5 if ntk else 1.0, "w_O": d_m**-0.5 if ntk else 1.0,
        }
        self.tau_1 = self.multipliers["w_O"]

    @classmethod
    def from_config(cls, config: ShallowEncoderConfig, d: int, T: int | None = None,
                    outputs: int = 1) -> "ShallowEncoder":
        """The encoder of `config` for sequences (T, d) and targets with `outputs` columns."""
        if T is None:
            raise ValueError("model.name = 'shallow-encoder': the encoder needs the sequence length T")
        if config.outputs != "auto" and config.outputs != outputs:
            raise ValueError(f"model.outputs = {config.outputs}: the data has {outputs} target column(s); "
                             "use outputs: auto or match the data")
        return cls(d=d, T=T, d_m=config.d_m, phi=config.phi, scaling=config.scaling, init=config.init,
                   outputs=outputs)

    # ------------------------------------------------------------------------------- parameters
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every block (unit index first)."""
        w_O = (self.d_m,) if self.outputs == 1 else (self.d_m, self.outputs)
        return {"W_Q": (self.d_m, self.d), "W_K": (self.d_m, self.d), "W_V": (self.d_m, self.d),
                "W_H": (self.d_m, self.fan_in_H), "w_O": w_O}

    def sample_flops(self, T: int) -> SampleFlops:
        """With D = d_m, F = fan_in(W_H) and C outputs, in multiply-adds: forward Q, Kk, V (3 T d D),
        logits and S V (2 T^2 D), W_H z (F D), the read-out (D C); backward the read-out and its
        transpose (2 D C), the W_H gradient and u W_H (2 F D), G V^T, S^T G, dP Kk and dP^T Q
        (4 T^2 D) and the three projection gradients (3 T d D)."""
        D, F, C = self.d_m, (T * self.d_m if self.phi == "flatten" else self.d_m), self.outputs
        forward = 3 * T * self.d * D + 2 * T * T * D + F * D + D * C
        backward = 2 * D * C + 2 * F * D + 4 * T * T * D + 3 * T * self.d * D
        return SampleFlops(2 * forward, 2 * (forward + backward))

    def ntk_pair_flops(self, T: int) -> float:
        """Per output, in multiply-adds: w_O (D), W_H (D + F) and the three pair traces of T x T
        Gram matrices (T^2 (D + d) each)."""
        D, F = self.d_m, (T * self.d_m if self.phi == "flatten" else self.d_m)
        return 2 * self.outputs * (2 * D + F + 3 * T * T * (D + self.d))

    def init_variances(self) -> dict[str, float]:
        """Variance of the i.i.d. Gaussian entries of every block at initialisation (the table)."""
        if self.init_scheme == "ntk":
            return {name: 1.0 for name in self.blocks}
        gain = 2.0 if self.init_scheme == "he" else 1.0
        return {"W_Q": gain / self.d, "W_K": gain / self.d, "W_V": gain / self.d,
                "W_H": gain / self.fan_in_H, "w_O": gain / self.d_m}

    def effective_variances(self) -> dict[str, float]:
        """Variance of multiplier * weight: what the forward pass sees (NTK equals LeCun here)."""
        var = self.init_variances()
        return {name: self.multipliers[name] ** 2 * var[name] for name in self.blocks}

    def init(self, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Params:
        """Gaussian initialisation of the configured scheme, drawn in float64 on the CPU."""
        gen = generator(seed, "init")
        var = self.init_variances()
        params = {}
        for name, shape in self.shapes().items():
            w = torch.randn(shape, generator=gen, dtype=torch.float64) * math.sqrt(var[name])
            params[name] = w.to(dtype=dtype, device=device)
        return params

    # ---------------------------------------------------------------------------------- forward
    def forward_state(self, params: Params, X: torch.Tensor) -> EncoderState:
        """All intermediates of the forward pass on X (B, T, d)."""
        self._check_input(X)
        c = self.multipliers
        Q = c["W_Q"] * (X @ params["W_Q"].T)
        Kk = c["W_K"] * (X @ params["W_K"].T)
        V = c["W_V"] * (X @ params["W_V"].T)
        L = self.tau_0 * (Q @ Kk.transpose(1, 2))
        S = torch.softmax(L, dim=-1)
        A = S @ V
        z = A.reshape(A.shape[0], -1) if self.phi == "flatten" else A.mean(dim=1)
        h = c["W_H"] * (z @ params["W_H"].T)
        r = torch.relu(h)
        f = self.tau_1 * (r @ params["w_O"])
        return EncoderState(Q=Q, Kk=Kk, V=V, L=L, S=S, A=A, z=z, h=h, r=r, f=f)

    def forward(self, params: Params, X: torch.Tensor) -> torch.Tensor:
        """f(X): (B,) for a scalar read-out, (B, classes) for a multi-output one."""
        return self.forward_state(params, X).f

    def _check_input(self, X: torch.Tensor) -> None:
        if X.dim() != 3 or X.shape[1:] != (self.T, self.d):
            raise ValueError(f"X has shape {tuple(X.shape)}: expected (B, T={self.T}, d={self.d})")

    # --------------------------------------------------------------------------------- gradient
    def loss_and_grad(self, params: Params, X: torch.Tensor, y: torch.Tensor,
                      loss: str = "half-mse") -> tuple[torch.Tensor, Params]:
        """Loss and its exact gradient by the chain rule written out (no autograd graph).

        With e = dloss/df, u = tau_1 relu'(h) * (w_O e) and G = dloss/dA:
        grad w_O = tau_1 r^T e, grad W_H = c_H u^T z, G = reshape(c_H u W_H) (flatten) or its rows/T
        (mean), grad W_V = c_V sum_b (S_b^T G_b)^T X_b, dP = S * (G V^T - rowsum(S * G V^T)),
        grad W_Q = c_Q tau_0 sum_b (dP_b Kk_b)^T X_b, grad W_K = c_K tau_0 sum_b (dP_b^T Q_b)^T X_b.
        """
        c = self.multipliers
        s = self.forward_state(params, X)
        residual = s.f - y
        scale = loss_scale(loss, X.shape[0])
        value = scale * (residual**2).sum()
        e = 2 * scale * residual                                            # (B,) or (B, C)
        grad_O = self.tau_1 * (s.r.T @ e)
        back = e.unsqueeze(-1) * params["w_O"] if self.outputs == 1 else e @ params["w_O"].T
        u = self.tau_1 * back * (s.h > 0).to(s.h.dtype)                     # dloss/dh (B, d_m)
        grad_H = (u.T @ s.z).mul_(c["W_H"])
        G = self._grad_A(c["W_H"] * (u @ params["W_H"]))
        dP = _softmax_backward(s.S, G @ s.V.transpose(1, 2))
        dV = s.S.transpose(1, 2) @ G
        dQ = self.tau_0 * (dP @ s.Kk)
        dK = self.tau_0 * (dP.transpose(1, 2) @ s.Q)
        grads = {"W_Q": c["W_Q"] * torch.einsum("btm,btd->md", dQ, X),
                 "W_K": c["W_K"] * torch.einsum("btm,btd->md", dK, X),
                 "W_V": c["W_V"] * torch.einsum("btm,btd->md", dV, X),
                 "W_H": grad_H, "w_O": grad_O}
        return value.detach(), grads

    def _grad_A(self, grad_z: torch.Tensor) -> torch.Tensor:
        """d(.)/dA (B, T, d_m) from d(.)/dz (B, fan_in) through phi."""
        if self.phi == "flatten":
            return grad_z.reshape(grad_z.shape[0], self.T, self.d_m)
        return (grad_z / self.T).unsqueeze(1).expand(-1, self.T, -1)

    # -------------------------------------------------------------------------------------- NTK
    def ntk_blocks(self, params: Params, X1: torch.Tensor, X2: torch.Tensor | None = None,
                   output: int | None = None, max_entries: int = 2**24) -> dict[str, torch.Tensor]:
        """Exact empirical NTK per block, K_p[a, b] = <df(X1_a)/dW_p, df(X2_b)/dW_p>: (N1, N2) each.

        Per pair (spec ntk.md, section 2), with u = relu'(h) * w_O, G = df/dA, B = S X,
        dP = softmax backward of G V^T, M = dP^T X, R = dP X:
            w_O: tau_1^2 <r, r'>           W_H: c_H^2 tau_1^2 <u, u'> <z, z'>
            W_V: c_V^2 <G G'^T, B B'^T>    (mean pooling: G = 1 g^T / T, so c_V^2 <g, g'> <b, b'>,
                                            g = df/dz, b = mean of the rows of B)
            W_Q: c_Q^2 tau_0^2 <M M'^T, Kk Kk'^T>     W_K: c_K^2 tau_0^2 <R R'^T, Q Q'^T>
        where <P, P'> sums elementwise products. Pairs are processed in chunks of rows of X1 so that
        no intermediate holds more than about `max_entries` numbers. A multi-output model gives the
        kernel of output `output`, or with output=None the sum over outputs of their kernels.
        """
        with torch.no_grad():
            if self.outputs == 1:
                if output not in (None, 0):
                    raise ValueError(f"output = {output!r}: this model has a single output")
                return self._ntk_blocks_for(params, params["w_O"], X1, X2, max_entries)
            if output is not None:
                if not 0 <= output < self.outputs:
                    raise ValueError(f"output = {output!r}: allowed are 0..{self.outputs - 1} or None")
                return self._ntk_blocks_for(params, params["w_O"][:, output], X1, X2, max_entries)
            total: dict[str, torch.Tensor] = {}
            for k in range(self.outputs):
                blocks = self._ntk_blocks_for(params, params["w_O"][:, k], X1, X2, max_entries)
                total = blocks if not total else {n: total[n] + blocks[n] for n in blocks}
            return total

    def ntk(self, params: Params, X1: torch.Tensor, X2: torch.Tensor | None = None,
            output: int | None = None) -> torch.Tensor:
        """The empirical NTK (N1, N2): the sum of `ntk_blocks`."""
        return sum(self.ntk_blocks(params, X1, X2, output=output).values())

    def _kernel_features(self, params: Params, w: torch.Tensor, X: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-sample quantities every block kernel is built from (all O(T d_m) per sample)."""
        c = self.multipliers
        s = self.forward_state(params, X)
        u = (s.h > 0).to(s.h.dtype) * w                                      # (N, d_m)
        grad_z = (c["W_H"] * self.tau_1) * (u @ params["W_H"])              # df/dz (N, fan_in)
        G = self._grad_A(grad_z)
        dP = _softmax_backward(s.S, G @ s.V.transpose(1, 2))
        B = s.S @ X
        feats = {"r": s.r, "u": u, "z": s.z, "Q": s.Q, "Kk": s.Kk,
                 "M": dP.transpose(1, 2) @ X, "R": dP @ X}
        if self.phi == "flatten":
            feats.update(G=G, B=B)
        else:
            feats.update(g=grad_z, b=B.mean(dim=1))
        return feats

    def _ntk_blocks_for(self, params: Params, w: torch.Tensor, X1: torch.Tensor, X2: torch.Tensor | None,
                        max_entries: int) -> dict[str, torch.Tensor]:
        c, t0, t1 = self.multipliers, self.tau_0, self.tau_1
        F2 = self._kernel_features(params, w, X1 if X2 is None else X2)
        n2 = F2["r"].shape[0]
        rows = max(1, max_entries // max(1, n2 * self.T * self.T))
        out: dict[str, list[torch.Tensor]] = {name: [] for name in self.blocks}
        for start in range(0, X1.shape[0], rows):
            F1 = self._kernel_features(params, w, X1[start:start + rows])
            out["w_O"].append(t1**2 * (F1["r"] @ F2["r"].T))
            out["W_H"].append((c["W_H"] * t1) ** 2 * (F1["u"] @ F2["u"].T) * (F1["z"] @ F2["z"].T))
            if self.phi == "flatten":
                out["W_V"].append(c["W_V"] ** 2 * _pair_trace(F1["G"], F2["G"], F1["B"], F2["B"]))
            else:
                out["W_V"].append(c["W_V"] ** 2 * (F1["g"] @ F2["g"].T) * (F1["b"] @ F2["b"].T))
            out["W_Q"].append((c["W_Q"] * t0) ** 2 * _pair_trace(F1["M"], F2["M"], F1["Kk"], F2["Kk"]))
            out["W_K"].append((c["W_K"] * t0) ** 2 * _pair_trace(F1["R"], F2["R"], F1["Q"], F2["Q"]))
        return {name: torch.cat(parts) for name, parts in out.items()}


def _softmax_backward(S: torch.Tensor, dS: torch.Tensor) -> torch.Tensor:
    """Gradient with respect to the logits of row softmaxes S (B, T, T) given dS = d(.)/dS."""
    return S * (dS - (S * dS).sum(dim=-1, keepdim=True))


def _pair_trace(P1: torch.Tensor, P2: torch.Tensor, R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """<P_a P_b^T, R_a R_b^T> for all pairs: P1 (n1, T, p), P2 (n2, T, p), R* (., T, q) -> (n1, n2)."""
    n1, T, _ = P1.shape
    n2 = P2.shape[0]
    gram_P = (P1.reshape(n1 * T, -1) @ P2.reshape(n2 * T, -1).T).reshape(n1, T, n2, T)
    gram_R = (R1.reshape(n1 * T, -1) @ R2.reshape(n2 * T, -1).T).reshape(n1, T, n2, T)
    return (gram_P * gram_R).sum(dim=(1, 3))
