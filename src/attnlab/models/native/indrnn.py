"""Python side of indrnn.cpp: the IndRNN's fused forward pass and backpropagation through time on the CPU.

Parameters go in as the model keeps them (W_in (m, d), u (m,), c (m,)) and are laid out unit
innermost (W_in as (d, G, Mp)), in G groups of m / G units each padded with zeros to a multiple of
the kernel's tile (padded units have W_in = u = c = 0; the read-out skips them). A paired model
passes G = 2.

All working memory is allocated here as torch tensors, so that attnlab.train.memory counts it: the
forward keeps h_T of one group of samples per thread (O(threads m), flat in T and B), the loss and
gradient every h_t of one group per thread (O(threads T m)) and one partial gradient per chunk of
samples (O(B d m / chunk)).
"""

from __future__ import annotations

import ctypes
import functools
import math

import torch

from attnlab.models.native.build import load
from attnlab.models.native.layout import Layout, kernel_supports, simd_lanes

ACTIVATION_CODES = {"tanh": 0, "erf": 1}
_i64, _int, _dbl, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p


@functools.cache
def _library() -> ctypes.CDLL | None:
    lib = load("indrnn")
    if lib is None:
        return None
    lib.rnn_chunk.restype = lib.rnn_group.restype = lib.rnn_scratch.restype = _i64
    lib.rnn_scratch.argtypes = [_i64, _i64, _int, _int]
    for suffix in ("f32", "f64"):
        getattr(lib, f"rnn_forward_{suffix}").argtypes = \
            [_i64] * 6 + [_ptr] * 4 + [_int, _dbl, _ptr, _ptr, _int]
        getattr(lib, f"rnn_loss_and_grad_{suffix}").argtypes = \
            [_i64] * 6 + [_ptr] * 5 + [_int, _dbl, _dbl] + [_ptr] * 6 + [_int]
    return lib


def supports(tensors: list[torch.Tensor], activation: str, d: int) -> bool:
    """Whether the fused kernel can take these tensors: plain CPU float32/float64 tensors that no
    autograd or torch.func transform tracks, a supported activation and input dimension d."""
    return kernel_supports(_library, "rnn", tensors, activation, ACTIVATION_CODES, d)


def _workers(B: int) -> int:
    """Threads to run on: torch's thread count, at most one per chunk of samples."""
    return max(1, min(torch.get_num_threads(), -(-B // _library().rnn_chunk())))


def _prepare(params: dict, X: torch.Tensor, groups: int) -> tuple[Layout, list, list[torch.Tensor]]:
    layout = Layout(params["c"].shape[0], groups, simd_lanes(_library(), "rnn", X.dtype))
    X = X.contiguous()
    packed = [layout.pack(params["W_in"], groups_last=True),      # (d, G, Mp)
              layout.pack(params["u"]), layout.pack(params["c"])]
    B, T, d = X.shape
    return layout, [B, T, d, layout.groups, layout.padded, layout.per_group], [X, *packed]


def forward(params: dict, X: torch.Tensor, groups: int, activation: str) -> torch.Tensor:
    """f(X) (B,) for X (B, T, d)."""
    lib = _library()
    layout, sizes, tensors = _prepare(params, X, groups)
    B, T = X.shape[:2]
    workers = _workers(B)
    code = ACTIVATION_CODES[activation]
    scratch = X.new_empty(workers, lib.rnn_scratch(T, layout.groups * layout.padded, code, 0))
    f = X.new_empty(B)
    fn = lib.rnn_forward_f32 if X.dtype == torch.float32 else lib.rnn_forward_f64
    fn(*sizes, *(t.data_ptr() for t in tensors), code, 1 / math.sqrt(layout.m), f.data_ptr(),
       scratch.data_ptr(), workers)
    return f


def loss_and_grad(params: dict, X: torch.Tensor, y: torch.Tensor, scale: float, groups: int,
                  activation: str) -> tuple[torch.Tensor, dict]:
    """scale * sum_b (f(X_b) - y_b)^2 for X (B, T, d), y (B,), and its gradient
    {"W_in" (m, d), "u" (m,), "c" (m,)}."""
    lib = _library()
    layout, sizes, tensors = _prepare(params, X, groups)
    B, T, d = X.shape
    workers, units = _workers(B), layout.groups * layout.padded
    code = ACTIVATION_CODES[activation]
    scratch = X.new_empty(workers, lib.rnn_scratch(T, units, code, 1))
    partial = X.new_empty(-(-B // lib.rnn_chunk()), (d + 2) * units)   # zeroed by each chunk's worker
    W, u, c = tensors[1:]
    y = y.contiguous()
    f = X.new_empty(B)
    grads = [torch.empty_like(t) for t in (W, u, c)]
    fn = lib.rnn_loss_and_grad_f32 if X.dtype == torch.float32 else lib.rnn_loss_and_grad_f64
    fn(*sizes, tensors[0].data_ptr(), y.data_ptr(), *(t.data_ptr() for t in tensors[1:]), code,
       1 / math.sqrt(layout.m), 2 * scale / math.sqrt(layout.m), f.data_ptr(),
       *(g.data_ptr() for g in grads), partial.data_ptr(), scratch.data_ptr(), workers)
    loss = scale * ((f - y) ** 2).sum()                 # as the PyTorch path computes it
    return loss, {"W_in": layout.unpack(grads[0], groups_last=True), "u": layout.unpack(grads[1]),
                  "c": layout.unpack(grads[2])}
