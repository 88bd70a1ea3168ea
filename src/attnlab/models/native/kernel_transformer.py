"""Python side of kernel_transformer.cpp: the fused forward pass and loss gradient on the CPU.

Parameters go in as the model keeps them (W (m, d, d), U (m, d), c (m,)) and are laid out head
innermost, in G groups of m / G heads each padded with zeros to a multiple of the kernel's tile
(padded heads have c = 0 and add exactly 0). A paired model passes G = 2.
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
    lib = load("kernel_transformer")
    if lib is None:
        return None
    for suffix in ("f32", "f64"):
        getattr(lib, f"kt_workspace_{suffix}").argtypes = [_i64] * 5 + [_int, _int]
        getattr(lib, f"kt_workspace_{suffix}").restype = _i64
        getattr(lib, f"kt_forward_{suffix}").argtypes = [_i64] * 5 + [_ptr] * 4 + [_int, _dbl, _ptr, _ptr, _int]
        getattr(lib, f"kt_loss_and_grad_{suffix}").argtypes = \
            [_i64] * 5 + [_ptr] * 5 + [_int, _dbl, _dbl] + [_ptr] * 5 + [_int]
    return lib


def supports(tensors: list[torch.Tensor], activation: str, d: int) -> bool:
    """Whether the fused kernel can take these tensors: plain CPU float32/float64 tensors that no
    autograd or torch.func transform tracks, a supported activation and token dimension d."""
    return kernel_supports(_library, "kt", tensors, activation, ACTIVATION_CODES, d)


def _pointer(t: torch.Tensor) -> int:
    return t.data_ptr()


def _call_args(layout: Layout, params: dict, X: torch.Tensor) -> tuple[list, list[torch.Tensor]]:
    X = X.contiguous()
    packed = [layout.pack(params[k]) for k in ("W", "U", "c")]
    B, T, d = X.shape
    return [B, T, d, layout.groups, layout.padded], [X, *packed]


def _suffix(dtype: torch.dtype) -> str:
    return "f32" if dtype == torch.float32 else "f64"


def _workspace(sizes: list, dtype: torch.dtype, threads: int, gradients: bool) -> torch.Tensor:
    """The kernel's scratch as a torch tensor, so that PyTorch's memory accounting sees it."""
    count = getattr(_library(), f"kt_workspace_{_suffix(dtype)}")(*sizes, threads, int(gradients))
    return torch.empty(count, dtype=dtype)


def forward(params: dict, X: torch.Tensor, groups: int, activation: str) -> torch.Tensor:
    """f(X) (B,) for X (B, T, d)."""
    layout = Layout(params["c"].shape[0], groups, simd_lanes(_library(), "kt", X.dtype))
    sizes, (X, W, U, c) = _call_args(layout, params, X)
    threads = torch.get_num_threads()
    f = torch.empty(X.shape[0], dtype=X.dtype)
    workspace = _workspace(sizes, X.dtype, threads, gradients=False)
    getattr(_library(), f"kt_forward_{_suffix(X.dtype)}")(
        *sizes, *map(_pointer, (X, W, U, c)), ACTIVATION_CODES[activation], 1 / math.sqrt(layout.m),
        _pointer(f), _pointer(workspace), threads)
    return f


def loss_and_grad(params: dict, X: torch.Tensor, y: torch.Tensor, scale: float, groups: int,
                  activation: str) -> tuple[torch.Tensor, dict]:
    """scale * sum_b (f(X_b) - y_b)^2 and its gradient {"W" (m,d,d), "U" (m,d), "c" (m,)}."""
    layout = Layout(params["c"].shape[0], groups, simd_lanes(_library(), "kt", X.dtype))
    sizes, (X, W, U, c) = _call_args(layout, params, X)
    threads = torch.get_num_threads()
    y = y.contiguous()
    grads = [torch.empty_like(t) for t in (W, U, c)]
    workspace = _workspace(sizes, X.dtype, threads, gradients=True)
    total = ctypes.c_double()
    getattr(_library(), f"kt_loss_and_grad_{_suffix(X.dtype)}")(
        *sizes, *map(_pointer, (X, y, W, U, c)), ACTIVATION_CODES[activation], 1 / math.sqrt(layout.m),
        2 * scale / math.sqrt(layout.m), ctypes.byref(total), *map(_pointer, grads), _pointer(workspace), threads)
    loss = torch.tensor(scale * total.value, dtype=X.dtype)
    return loss, {k: layout.unpack(g) for k, g in zip(("W", "U", "c"), grads)}
