"""The device under test of the CUDA comparisons (the fixture `target` is in conftest.py).

Every test here computes a reference on the CPU (the fused kernels where they apply, as CPU runs do)
and the same thing on `target`, then compares the two in float64. `target` is "cuda" (marked
`cuda`, skipped without a GPU) and "cpu-standin": the CPU taking the path CUDA takes (the PyTorch
formulation, fused kernels off, stacked runs through torch.func.vmap), so that the test bodies and
the path itself are checked on any machine before GPU time is spent on them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator
from unittest import mock

import torch

from attnlab.models.native import indrnn as native_indrnn
from attnlab.models.native import kernel_transformer as native_kernel_transformer

HAS_CUDA = torch.cuda.is_available()


@dataclass(frozen=True)
class Target:
    """Where the computation under test runs: `device` (a torch device) and how (`path`)."""

    name: str
    device: str

    @contextlib.contextmanager
    def path(self) -> Iterator[None]:
        """Inside the block, computations take the CUDA path (the stand-in turns the fused CPU kernels off)."""
        if self.name != "cpu-standin":
            yield
            return
        with mock.patch.object(native_kernel_transformer, "supports", lambda *a, **k: False), \
                mock.patch.object(native_indrnn, "supports", lambda *a, **k: False):
            yield

    def put(self, tree: Any) -> Any:
        """Tensors (also in dicts, lists and tuples) moved to the target device."""
        return move(tree, self.device)


def move(tree: Any, device: str) -> Any:
    """Tensors (also in dicts, lists and tuples) moved to `device`."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: move(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(move(v, device) for v in tree)
    return tree
