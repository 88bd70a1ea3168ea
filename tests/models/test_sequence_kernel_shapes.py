"""Both fused sequence kernels against their PyTorch paths at the experiments' shapes: the loss and
every gradient block in float64 to 1e-10 for T in {1, 5, 97, 300} (E4's T = L + 1 and beyond),
d in {1, 8, 17}, odd (unpaired) and even (paired) widths; and bitwise thread-count independence at
E4's shape."""

from __future__ import annotations

import pytest
import torch

from attnlab.models import IndRNN, KernelTransformer
from attnlab.models.native import indrnn as rnn_kernel
from attnlab.models.native import kernel_transformer as kt_kernel

pytestmark = pytest.mark.skipif(rnn_kernel._library() is None or kt_kernel._library() is None,
                                reason="no compiled kernels (no C++ compiler or ATTNLAB_NATIVE=0)")


def build(family, fused, d, m):
    paired = m % 2 == 0
    if family == "indrnn":   # contracting (g = 0.9): float64 rounding is not amplified over 300 steps
        return IndRNN(d=d, m=m, gain=0.9, paired=paired, fused=fused)
    return KernelTransformer(d=d, m=m, paired=paired, fused=fused)


def problem(B, T, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(B, T, d, generator=gen, dtype=torch.float64) / d**0.5
    return X, torch.randn(B, generator=gen, dtype=torch.float64)


def perturbed(params, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("family", ["indrnn", "kernel-transformer"])
@pytest.mark.parametrize("T", [1, 5, 97, 300])
@pytest.mark.parametrize("d", [1, 8, 17])
@pytest.mark.parametrize("m", [7, 12])
def test_fused_loss_and_every_gradient_block_equal_the_pytorch_path(family, T, d, m):
    fused, plain = build(family, True, d, m), build(family, False, d, m)
    params = perturbed(fused.init(0, dtype=torch.float64))
    X, y = problem(37, T, d)
    assert fused._use_fused(params, X, y) and not plain._use_fused(params, X, y)
    loss, grads = fused.loss_and_grad(params, X, y)
    ref_loss, ref_grads = plain.loss_and_grad(params, X, y)
    assert abs(float(loss - ref_loss)) <= 1e-10 * abs(float(ref_loss))
    for name in fused.blocks:
        scale = float(ref_grads[name].abs().max())
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-10, atol=1e-10 * scale)
    torch.testing.assert_close(fused(params, X), plain(params, X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["indrnn", "kernel-transformer"])
def test_thread_count_leaves_every_bit_unchanged_at_e4_shape(family):
    model = build(family, True, 17, 64)
    params = perturbed(model.init(0))
    X, y = (t.float() for t in problem(700, 97, 17))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append((model(params, X), *model.loss_and_grad(params, X, y)))
    finally:
        torch.set_num_threads(before)
    for f, loss, grads in results[1:]:
        assert torch.equal(f, results[0][0]) and torch.equal(loss, results[0][1])
        assert all(torch.equal(grads[k], results[0][2][k]) for k in model.blocks)
