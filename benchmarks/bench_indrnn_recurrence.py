"""IndRNN forward + backward over long sequences: the hand-written BPTT against a plain autograd loop.

Reference (measured in the same run): `for t in range(T): h = tanh(W_in x_t + u * h)` traced by
autograd, then `loss.backward()`. Candidates: IndRNN.loss_and_grad (hand-written backward, no
autograd graph), the IndRNN forward alone and, for context, the kernel-regime Transformer's
analytic step on the same data. With --variants also a design the IndRNN does not use: a
backward vectorised over time (torch.cumprod over one (T, B, m) buffer).
Prints times and ratios (reference / candidate: > 1 means faster than the reference), peak memory,
and the share of the hand-written pass that is Python overhead (its time on one sequence).
Repeats are interleaved across the cases and the best time of each is kept, so that a machine
whose load drifts during the run treats every case alike.

    PYTHONPATH=src python benchmarks/bench_indrnn_recurrence.py [--T 256] [--B 4000] [--m 64]
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
from attnlab.models import indrnn
from attnlab.models.indrnn import input_drive, readout
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
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--B", type=int, default=4000)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--variants", action="store_true",
                        help="also time the cumprod-vectorised backward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    data = ar_lag_data(L=args.T - 1, seed=0, n=args.B)
    X, y = data.X_train.to(dtype), data.y_train.to(dtype)
    rnn = IndRNN(d=data.d, m=args.m)
    gen = torch.Generator().manual_seed(1)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen).to(dtype)
              for k, v in rnn.init(0, dtype=dtype).items()}
    transformer = KernelTransformer(d=data.d, m=args.m)
    tparams = transformer.init(0, dtype=dtype)

    _, ref_grads = autograd_loop_step(params, X, y)
    _, grads = rnn.loss_and_grad(params, X, y)
    error = max(float((grads[k] - ref_grads[k]).norm() / ref_grads[k].norm()) for k in grads)

    cases = {
        "autograd for-loop (reference)": lambda: autograd_loop_step(params, X, y),
        "IndRNN.loss_and_grad (hand BPTT)": lambda: rnn.loss_and_grad(params, X, y),
        "IndRNN forward only": lambda: rnn(params, X),
        "Transformer.loss_and_grad": lambda: transformer.loss_and_grad(tparams, X, y),
    }
    if args.variants:
        cases["vectorised backward (torch.cumprod)"] = lambda: vectorised_cumprod_step(params, X, y)
    print(f"T={args.T} B={X.shape[0]} m={args.m} d={data.d} {args.dtype} threads={args.threads}; "
          f"max relative gradient difference hand vs reference: {error:.2e}")
    seconds = best_times(cases, args.repeats)
    reference = seconds["autograd for-loop (reference)"]
    print(f"{'case':<40}{'time [s]':>10}{'ratio':>8}{'peak MiB':>10}")
    for name, fn in cases.items():
        peak = peak_memory_bytes(fn, inputs=[X, y, *params.values(), *tparams.values()]) / 2**20
        print(f"{name:<40}{seconds[name]:>10.4f}{reference / seconds[name]:>8.2f}{peak:>10.1f}")
    # Python overhead: the same T steps on one sequence cost (almost) only the interpreter's share.
    overhead = best_times({"one": lambda: rnn.loss_and_grad(params, X[:1], y[:1]),
                           "full": lambda: rnn.loss_and_grad(params, X, y)}, args.repeats)
    print(f"hand BPTT Python-overhead share at B={X.shape[0]}: {overhead['one']:.4f} s (B=1) / "
          f"{overhead['full']:.4f} s = {overhead['one'] / overhead['full']:.1%}")


if __name__ == "__main__":
    main()
