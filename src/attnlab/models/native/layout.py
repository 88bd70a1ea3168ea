"""What the ctypes bindings of the compiled kernels share: which tensors a kernel may take, and the
head-innermost parameter layout (groups of heads or units, each zero-padded to whole SIMD tiles)."""

from __future__ import annotations

import torch


def plain(t: torch.Tensor) -> bool:
    """A CPU float32/float64 tensor that no autograd or torch.func transform tracks."""
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and not t.requires_grad
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


def kernel_can_take(tensors: list[torch.Tensor]) -> bool:
    """Every tensor plain, all of one dtype."""
    return all(plain(t) for t in tensors) and len({t.dtype for t in tensors}) == 1


class Layout:
    """m heads (or units) in `groups` groups, each padded with zeros to `padded`, a multiple of `lanes`."""

    def __init__(self, m: int, groups: int, lanes: int):
        self.m, self.groups, self.per_group = m, groups, m // groups
        self.padded = -(-self.per_group // lanes) * lanes

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        """(m, *rest) -> (G, *rest, Mp), contiguous, zero-padded."""
        grouped = t.reshape(self.groups, self.per_group, *t.shape[1:]).movedim(1, -1)
        out = t.new_zeros(*grouped.shape[:-1], self.padded)
        out[..., :self.per_group] = grouped
        return out

    def unpack(self, t: torch.Tensor) -> torch.Tensor:
        """(G, *rest, Mp) -> (m, *rest)."""
        return t[..., :self.per_group].movedim(-1, 1).reshape(self.m, *t.shape[1:-1])
