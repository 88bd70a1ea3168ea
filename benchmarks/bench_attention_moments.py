"""The kernel-regime Transformer's attention quantities on the PyTorch path (CUDA's), materialised
against a fused attention call: a candidate for the GPU step, measured before it is adopted.

Per sample b and head i a training step needs s_i = U_i . a_i, the attended token a_i = E_p[x] and
g_i = M_i U_i = E_p[x x^T] U_i - s_i a_i, where p_i = softmax_t(x_t . W_i x_T). The model's PyTorch
formulation (`head_features`, `covariance_times_readout`: the path of CUDA, autograd and torch.func)
materialises the (B, T, m) attention and the (B, T, m) read-outs and passes over them about ten
times. The candidate, `fused_head_moments` (the model's `sdpa=True`), calls torch's
scaled_dot_product_attention once per sample with the m queries W_i x_T, the tokens as keys and
values v_t = [x_t, upper triangle of x_t x_t^T] (zero-padded to a multiple of 8), so the attention
never leaves the kernel; E_p[x x^T] is then unpacked and applied to U. Its arithmetic is larger:
2 (d + d + d(d+1)/2) FLOP per sample, head and token against 8 d.

Prints, per shape (E4 L = 96, E7 L = 255, E5 T = 1024 with n = 5000 and a 20% validation split,
m = 64, float32): ms of each, their ratio, FLOP of each and the share of a float32 matrix product's
rate measured in the same run (TF32 off), the bytes of the materialised intermediates, the SDPA
backends that accept the call, and the largest differences in s, a and g relative to their largest
magnitude; then, at E5's shape, 4 runs stacked through vmap (as the trainer stacks seeds) against one
call per run.

    PYTHONPATH=src python benchmarks/bench_attention_moments.py --device cuda [--repeats 10]
    PYTHONPATH=src python benchmarks/bench_attention_moments.py --device cpu --samples 200   # stand-in
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnlab.models.kernel_transformer import covariance_times_readout, fused_head_moments, head_features
from bench_sequence_step import instruction_set

SHAPES = {"E4 L=96": (97, 17), "E7 L=255": (256, 17), "E5 T=1024": (1024, 8)}   # (T, d)


def materialised(W: torch.Tensor, U: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """s (B, m), a (B, m, d), g (B, m, d) as the model's PyTorch path computes them."""
    h = head_features(W, U, X)
    return h.s, h.a, covariance_times_readout(X, h)


def flops(B: int, T: int, d: int, m: int) -> tuple[float, float]:
    """(materialised, fused) FLOP: per sample, head and token logits, attended token, read-outs and
    M U (8 d) against logits and the values (2 (2 d + d(d+1)/2)); W x_T and the unpacking not counted."""
    return 2 * B * m * T * 4 * d, 2 * B * m * T * (2 * d + d * (d + 1) // 2)


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def best_ms(run, device: str, repeats: int) -> float:
    run()
    synchronise(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronise(device)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def matmul_rate(device: str, size: int) -> float:
    A = torch.randn(size, size, device=device)
    return 2 * size**3 / (best_ms(lambda: A @ A, device, 5) / 1e3)


def accepting_backends(W, U, X) -> list[str]:
    """The SDPA backends that take the fused call's shapes and dtype on this device."""
    names = []
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.MATH):
        try:
            with sdpa_kernel(backend):
                fused_head_moments(W, U, X[:8])
            names.append(backend.name)
        except RuntimeError:
            pass
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=4000, help="training samples B (n = 5000, 80%%)")
    parser.add_argument("--heads", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)   # SDPA's notes on the backends it skips
    device, B, m = args.device, args.samples, args.heads
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu {instruction_set()}"
    rate = matmul_rate(device, 4096 if device.startswith("cuda") else 1024)
    print(f"{name}, torch {torch.__version__}, float32 (TF32 off); matmul {rate / 1e12:.2f} TFLOP/s")
    print("reference: the model's PyTorch path (head_features + covariance_times_readout, the (B, T, m) "
          "attention materialised); candidate: one scaled_dot_product_attention call, values [x, upper(x x^T)]")
    print(f"{'shape':<11}{'B':>6}{'intermediates GiB':>19}{'materialised ms':>17}{'fused ms':>10}{'speed-up':>10}"
          f"{'GFLOP mat/fused':>17}{'of matmul mat/fused':>21}{'max rel. diff s a g':>27}  backends")
    for label, (T, d) in SHAPES.items():
        gen = torch.Generator().manual_seed(0)
        X = (torch.randn(B, T, d, generator=gen) / math.sqrt(d)).to(device)
        W = torch.randn(m, d, d, generator=gen).to(device)
        U = torch.randn(m, d, generator=gen).to(device)
        backends = accepting_backends(W, U, X)
        slow = best_ms(lambda: materialised(W, U, X), device, args.repeats)
        fast = best_ms(lambda: fused_head_moments(W, U, X), device, args.repeats)
        diffs = [float((x - y).abs().max() / y.abs().max())
                 for x, y in zip(fused_head_moments(W, U, X), materialised(W, U, X))]
        f_mat, f_fused = flops(B, T, d, m)
        share_mat, share_fused = f_mat / (slow / 1e3) / rate, f_fused / (fast / 1e3) / rate
        print(f"{label:<11}{B:>6}{3 * B * T * m * 4 / 2**30:>19.2f}{slow:>17.2f}{fast:>10.2f}{slow / fast:>9.2f}x"
              f"{f_mat / 1e9:>8.1f} /{f_fused / 1e9:>6.1f}{share_mat:>11.1%} /{share_fused:>6.1%}"
              f"{'  '.join(f'{x:.0e}' for x in diffs):>27}  {','.join(backends)}", flush=True)
        del X
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    stacked_runs(device, B, m, args.repeats)


def stacked_runs(device: str, B: int, m: int, repeats: int, runs: int = 4) -> None:
    """Seeds stacked as the trainer stacks them (torch.func.vmap over the runs) against one call per
    run, at E5's shape: a missing batching rule for the fused backend would show as no gain."""
    T, d = SHAPES["E5 T=1024"]
    gen = torch.Generator().manual_seed(1)
    X = (torch.randn(runs, B, T, d, generator=gen) / math.sqrt(d)).to(device)
    W, U = torch.randn(runs, m, d, d, generator=gen).to(device), torch.randn(runs, m, d, generator=gen).to(device)
    for label, fn in (("materialised", materialised), ("fused", fused_head_moments)):
        together = best_ms(lambda: torch.func.vmap(fn)(W, U, X), device, repeats)
        apart = best_ms(lambda: [fn(W[r], U[r], X[r]) for r in range(runs)], device, repeats)
        print(f"E5 T=1024, {runs} runs, {label}: vmap {together:.2f} ms, one call per run {apart:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
