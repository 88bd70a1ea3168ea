"""What the ctypes bindings of the compiled kernels share: which tensors a kernel may take, and the
head-innermost parameter layout (groups of heads or units, each zero-padded to whole SIMD tiles)."""

from __future__ import annotations

import ctypes
from typing import Callable

import torch


def plain(t: torch.Tensor) -> bool:
    """A CPU float32/float64 tensor that no autograd or torch.func transform tracks."""
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and not t.requires_grad
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


def kernel_can_take(tensors: list[torch.Tensor]) -> bool:
    """Every tensor plain, all of one dtype."""
    return all(plain(t) for t in tensors) and len({t.dtype for t in tensors}) == 1


def kernel_supports(library: Callable[[], ctypes.CDLL | None], prefix: str, tensors: list[torch.Tensor],
                    activation: str, activations: dict[str, int], d: int) -> bool:
    """Whether the kernel `library()` (built only when the rest allows) takes these tensors: plain
    CPU float32/float64 tensors of one dtype, an activation it has and d <= its PREFIX_max_d()."""
    return (activation in activations and kernel_can_take(tensors) and library() is not None
            and d <= getattr(library(), f"{prefix}_max_d")())


def simd_lanes(library: ctypes.CDLL, prefix: str, dtype: torch.dtype) -> int:
    """Values of `dtype` per SIMD register of the kernel (its PREFIX_lanes_f32 / PREFIX_lanes_f64)."""
    return getattr(library, f"{prefix}_lanes_{'f32' if dtype == torch.float32 else 'f64'}")()


class Layout:
    """m heads (or units) in `groups` groups, each padded with zeros to `padded`, a multiple of `lanes`."""

    def __init__(self, m: int, groups: int, lanes: int):
        self.m, self.groups, self.per_group = m, groups, m // groups
        self.padded = -(-self.per_group // lanes) * lanes

    def pack(self, t: torch.Tensor, groups_last: bool = False) -> torch.Tensor:
        """(m, *rest) -> (G, *rest, Mp), or (*rest, G, Mp) with groups_last; contiguous, zero-padded
        (without padding, a view of t when the order allows)."""
        grouped = t.reshape(self.groups, self.per_group, *t.shape[1:])
        grouped = grouped.movedim((0, 1), (-2, -1)) if groups_last else grouped.movedim(1, -1)
        if self.padded == self.per_group:
            return grouped.contiguous()
        out = t.new_zeros(*grouped.shape[:-1], self.padded)
        out[..., :self.per_group] = grouped
        return out

    def unpack(self, t: torch.Tensor, groups_last: bool = False) -> torch.Tensor:
        """The inverse of pack: (G, *rest, Mp), or (*rest, G, Mp) with groups_last -> (m, *rest)."""
        kept = t if self.padded == self.per_group else t[..., :self.per_group]
        kept = kept.movedim((-2, -1), (0, 1)) if groups_last else kept.movedim(-1, 1)
        return kept.reshape(self.m, *kept.shape[2:])
