"""The precision policy: float32 means IEEE float32, never TF32 (TF32 matmuls ruin small
eigenvalues, and the CUDA runs must compute what the CPU runs compute).

No config field asks for TF32 or lower-precision matmuls; every run pins full precision
(`ieee_float32`) before it computes, whatever a caller set before, and the NTK engine's
`exact_matmul` does so inside a block."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def exact_matmul() -> Iterator[None]:
    """Disable TF32 (CUDA matmul and cuDNN) and reduced-precision float32 matmuls inside the block;
    restore the previous settings on exit."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def ieee_float32() -> None:
    """Run float32 matrix products (CUDA matmul, cuDNN, and torch's CPU backends) in full IEEE
    float32 from now on: TF32 off, float32 matmul precision "highest"."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
