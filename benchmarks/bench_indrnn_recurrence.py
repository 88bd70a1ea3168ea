"""IndRNN forward + backward over long sequences: the hand-written BPTT against a plain autograd loop.

Reference (measured in the same run): `for t in range(T): h = tanh(W_in x_t + u * h)` traced by
autograd, then `loss.backward()`. Candidates: IndRNN.loss_and_grad (hand-written backward, no
autograd graph) and, for context, the kernel-regime Transformer's analytic step on the same data.
Prints times and ratios (reference / candidate: > 1 means faster than the reference), peak memory,
and the share of the hand-written pass that is Python overhead (its time on one sequence).

    PYTHONPATH=src python benchmarks/bench_indrnn_recurrence.py [--T 256] [--B 4000] [--m 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from attnlab.data.sequences import ar_lag_data
from attnlab.models import IndRNN, KernelTransformer
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


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--B", type=int, default=4000)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
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
    print(f"T={args.T} B={X.shape[0]} m={args.m} d={data.d} {args.dtype} threads={args.threads}; "
          f"max relative gradient difference hand vs reference: {error:.2e}")
    reference = None
    print(f"{'case':<36}{'time [s]':>10}{'ratio':>8}{'peak MiB':>10}")
    for name, fn in cases.items():
        seconds = best_time(fn, args.repeats)
        reference = reference or seconds
        peak = peak_memory_bytes(fn, inputs=[X, y, *params.values(), *tparams.values()]) / 2**20
        print(f"{name:<36}{seconds:>10.4f}{reference / seconds:>8.2f}{peak:>10.1f}")
    # Python overhead: the same T steps on one sequence cost (almost) only the interpreter's share.
    one = best_time(lambda: rnn.loss_and_grad(params, X[:1], y[:1]), args.repeats)
    full = best_time(lambda: rnn.loss_and_grad(params, X, y), args.repeats)
    print(f"hand BPTT Python-overhead share at B={X.shape[0]}: {one:.4f} s (B=1) / {full:.4f} s = {one / full:.1%}")


if __name__ == "__main__":
    main()
