"""IndRNN forward + backward over long sequences: the fused kernel against a plain autograd loop.

Reference (measured in the same run): `for t in range(T): h = tanh(W_in x_t + u * h)` traced by
autograd, then `loss.backward()`, as a user would write it. Candidates: IndRNN.loss_and_grad on the
fused CPU kernel (models/native/indrnn.cpp, the trainers' path), the same on the PyTorch path
(fused=False: hand-written backward, one (B, m) tensor per step), the fused forward alone and, for
context, the kernel-regime Transformer's loss and gradient on the same data. With --variants also a
design the IndRNN does not use: a backward vectorised over time (torch.cumprod over one (T, B, m)
buffer).

Prints, per T: times and ratios (reference / candidate: > 1 means faster than the reference), peak
memory, the FLOP count of one loss-and-gradient pass, B T m (4 d + 8) (drive and input-weight
gradient 2 d each, the recurrence and the backward's elementwise products 8; the B T m tanh are
not counted), and the rate it reaches as a fraction of a 2048 x 2048 float matrix product timed in
the same run on the same threads. Repeats are interleaved across the cases and the best time of
each is kept, so that a machine whose load drifts during the run treats every case alike. The
compiled kernel is built (or loaded from the cache) before timing.

    PYTHONPATH=src python benchmarks/bench_indrnn_recurrence.py [--T 72 256] [--B 3200] [--m 64]
        [--repeats 3] [--threads 1] [--dtype float32] [--variants]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Callable

import torch

from attnlab.data.sequences import ar_lag_data
from attnlab.models import IndRNN, KernelTransformer
from attnlab.models.indrnn import input_drive, readout
from attnlab.models.native import indrnn as fused_kernel
from attnlab.train.memory import peak_memory_bytes


def autograd_loop_step(params, X, y):
    """The reference: a plain Python loop over t under autograd, backward by loss.backward()."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    W_in, u, c = leaves["W_in"], leaves["u"], leaves["c"]
    h = torch.zeros(X.shape[0], u.shape[0], dtype=X.dtype)
    for t in range(X.shape[1]):
        h = torch.tanh(X[:, t] @ W_in.T + u * h)
    loss = ((h @ c / math.sqrt(c.shape[0]) - y) ** 2).mean()
    loss.backward()
    return loss.detach(), {k: v.grad for k, v in leaves.items()}


def vectorised_cumprod_step(params, X, y):
    """The alternative the IndRNN does not use: states in one time-reversed (T, B, m) buffer, the
    backward as torch.cumprod over time (g_{T-k} = Q_0 ... Q_k), grad W_in as one matrix product."""
    with torch.no_grad():
        u, c = params["u"], params["c"]
        m = c.shape[0]
        X_reversed = X.flip(1)
        H = input_drive(params["W_in"], X_reversed)               # H[k] = state at t = T - k
        torch.tanh(H[-1], out=H[-1])
        for k in range(H.shape[0] - 2, -1, -1):
            torch.tanh(H[k].addcmul_(u, H[k + 1]), out=H[k])
        residual = readout(H[0], c) - y
        weight = (2 / (X.shape[0] * math.sqrt(m))) * residual
        Q = torch.addcmul(torch.ones((), dtype=X.dtype), H, H, value=-1)   # D_t = 1 - h_t^2
        Q[1:] *= u
        Q[0] *= weight.unsqueeze(1) * c
        G = torch.cumprod(Q, 0)
        rows = G.shape[0] * G.shape[1]
        grads = {"W_in": G.reshape(rows, m).T @ X_reversed.transpose(0, 1).reshape(rows, -1),
                 "u": (G[:-1] * H[1:]).sum((0, 1)), "c": H[0].T @ weight}
    return (residual**2).mean(), grads


def step_flops(B: int, T: int, d: int, m: int) -> int:
    """FLOPs of one loss-and-gradient pass (tanh evaluations not counted): per sample, step and unit
    the drive W_in x_t and the input-weight gradient 2 d each, the recurrence 2 and the backward's
    1 - h^2, g, g * h_{t-1} and u * g 6."""
    return B * T * m * (4 * d + 8)


def matmul_flops_per_second(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """The machine's rate on a large matrix product (the same dtype and threads)."""
    A, B = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = best_times({"mm": lambda: A @ B}, repeats)["mm"]
    return 2 * size**3 / seconds


def best_times(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each case over `repeats` rounds, the cases interleaved (after one warm-up)."""
    for fn in cases.values():
        fn()
    best = {name: math.inf for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[72, 256])
    parser.add_argument("--B", type=int, default=3200)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--variants", action="store_true",
                        help="also time the cumprod-vectorised backward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    start = time.perf_counter()
    compiled = fused_kernel._library() is not None
    build = time.perf_counter() - start
    peak_rate = matmul_flops_per_second(dtype)
    print("reference: plain autograd for-loop over t (h = tanh(W_in x_t + u * h)), loss.backward()")
    print(f"machine: {args.dtype} 2048^2 matrix product {peak_rate / 1e9:.1f} GFLOP/s on {args.threads} "
          f"thread(s); fused kernel {'ready' if compiled else 'NOT available'} after {build:.2f} s "
          "(compiled on first use, then loaded from ~/.cache/attnlab)")
    for T in args.T:
        run_one(T, args, dtype, peak_rate)


def run_one(T: int, args: argparse.Namespace, dtype: torch.dtype, peak_rate: float) -> None:
    # n windows of which 80% train: n = 1.25 B gives B training sequences.
    data = ar_lag_data(L=T - 1, seed=0, n=-(-args.B * 5 // 4))
    X, y = data.X_train[:args.B].to(dtype).contiguous(), data.y_train[:args.B].to(dtype)
    rnn, plain = IndRNN(d=data.d, m=args.m), IndRNN(d=data.d, m=args.m, fused=False)
    gen = torch.Generator().manual_seed(1)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen).to(dtype)
              for k, v in rnn.init(0, dtype=dtype).items()}
    transformer = KernelTransformer(d=data.d, m=args.m)
    tparams = transformer.init(0, dtype=dtype)

    _, ref_grads = autograd_loop_step(params, X, y)
    errors = {}
    for name, model in (("fused", rnn), ("pytorch path", plain)):
        _, grads = model.loss_and_grad(params, X, y)
        errors[name] = max(float((grads[k] - ref_grads[k]).norm() / ref_grads[k].norm()) for k in grads)

    fused_name = "IndRNN.loss_and_grad (fused)"
    cases = {
        "autograd for-loop (reference)": lambda: autograd_loop_step(params, X, y),
        fused_name: lambda: rnn.loss_and_grad(params, X, y),
        "IndRNN.loss_and_grad (fused=False)": lambda: plain.loss_and_grad(params, X, y),
        "IndRNN forward (fused)": lambda: rnn(params, X),
        "Transformer.loss_and_grad": lambda: transformer.loss_and_grad(tparams, X, y),
    }
    if args.variants:
        cases["vectorised backward (torch.cumprod)"] = lambda: vectorised_cumprod_step(params, X, y)
    print(f"\nT={T} B={X.shape[0]} m={args.m} d={data.d} {args.dtype} threads={args.threads}; max relative "
          f"gradient difference to the reference: fused {errors['fused']:.2e}, "
          f"fused=False {errors['pytorch path']:.2e}")
    seconds = best_times(cases, args.repeats)
    reference = seconds["autograd for-loop (reference)"]
    print(f"{'case':<40}{'time [s]':>10}{'ratio':>8}{'peak MiB':>10}")
    for name, fn in cases.items():
        peak = peak_memory_bytes(fn, inputs=[X, y, *params.values(), *tparams.values()]) / 2**20
        print(f"{name:<40}{seconds[name]:>10.4f}{reference / seconds[name]:>8.2f}{peak:>10.1f}")
    flops = step_flops(X.shape[0], T, data.d, args.m)
    rate = flops / seconds[fused_name]
    print(f"fused loss and gradient: {flops / 1e9:.2f} GFLOP in {seconds[fused_name]:.4f} s = "
          f"{rate / 1e9:.1f} GFLOP/s, {rate / peak_rate:.1%} of the matrix-product rate; "
          f"{reference / seconds[fused_name]:.2f}x the reference")


if __name__ == "__main__":
    main()
