"""Full-batch ProjGD on the kernel-regime Transformer: attnlab's trainer against plain PyTorch.

Reference (measured in the same process, from the same parameters on the same data): what a
competent user writes: autograd through a two-operand einsum forward pass, torch.optim.SGD, and a
vectorised per-head projection (one norm per head and block, one rescale). attnlab: the Trainer end
to end, recording curves as E3 does (every tau/500 = 8 steps of a 4000-step run), with the fused
compiled kernel; for context also attnlab's PyTorch formulation (fused=False) and the fused loss
and gradient alone. Prints seconds per step, the speed-up, the FLOP count of one step, the achieved
rate against a large matrix multiply measured in the same run, and the relative difference of the
final training losses.

    PYTHONPATH=src python benchmarks/bench_projgd.py [--widths 64 256] [--steps 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from attnlab.config import TrainConfig
from attnlab.data.teacher import teacher_data
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.models.native import build
from attnlab.train.trainer import Trainer

E3_RECORD_EVERY = 8   # tau / 500 for tau = 4000


def reference_final_loss(params0, X, y, steps, lr, rho=3.0):
    """The plain implementation: `steps` ProjGD steps, then the training loss of the last iterate."""
    m = params0["c"].shape[0]
    leaves = [params0[k].clone().requires_grad_() for k in ("W", "U", "c")]
    centres = [params0[k].clone() for k in ("W", "U", "c")]
    opt = torch.optim.SGD(leaves, lr=lr)
    radius = rho / math.sqrt(m)

    def loss_of(W, U, c):
        v = torch.einsum("mde,be->bmd", W, X[:, -1])                 # W_i x_T
        p = torch.softmax(torch.einsum("btd,bmd->bmt", X, v), dim=-1)
        a = torch.einsum("bmt,btd->bmd", p, X)
        f = torch.tanh(torch.einsum("bmd,md->bm", a, U)) @ c / math.sqrt(m)
        return ((f - y) ** 2).mean()

    for _ in range(steps):
        opt.zero_grad()
        loss_of(*leaves).backward()
        opt.step()
        with torch.no_grad():
            for P, P0 in zip(leaves, centres):
                diff = P - P0
                norms = diff.reshape(m, -1).norm(dim=1)
                scale = (radius / norms.clamp_min(1e-30)).clamp(max=1.0)
                P.copy_(P0 + diff * scale.reshape(-1, *(1,) * (diff.dim() - 1)))
    with torch.no_grad():
        return float(loss_of(*leaves))


def step_flops(n, T, d, m):
    """FLOPs of one fused loss-and-gradient step, per (sample, head): W x_T 2d^2, logits 2Td,
    read-outs x_t.U 2Td, weights and sums 3T, a and M U 4Td, gradients 2d^2 + 3d (exp not counted)."""
    return n * m * (4 * d * d + 8 * T * d + 3 * T + 3 * d)


def matmul_gflops(size=2048, repeats=5):
    A, B = torch.randn(size, size), torch.randn(size, size)
    A @ B
    start = time.perf_counter()
    for _ in range(repeats):
        A @ B
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def build_seconds():
    """Seconds to compile the fused kernel from scratch (paid once per machine, then cached)."""
    compiler = build._compiler()
    if compiler is None:
        return math.nan
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        build._compile(compiler, build.SOURCE_DIR / "kernel_transformer.cpp", Path(folder) / "k.so")
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--n", type=int, default=5000, help="samples before the 80/20 split")
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = teacher_data(args.n, args.T, args.d, seed=0, K=512).to(torch.float32)
    X, y = data.X_train, data.y_train
    peak = matmul_gflops()
    print(f"cpu, {args.threads} threads, float32, n_train={X.shape[0]} T={args.T} d={args.d}, {args.steps} steps; "
          f"2048^2 fp32 matmul {peak:.1f} GFLOP/s; fused kernel build {build_seconds():.1f} s (once, cached)")
    print("reference: autograd through an einsum forward, torch.optim.SGD, vectorised per-head projection")
    print(f"{'m':>5} {'GFLOP/step':>10} {'attnlab s/step':>15} {'reference':>10} {'speed-up':>9} "
          f"{'torch path':>11} {'kernel only':>12} {'GFLOP/s':>8} {'of matmul':>10} {'loss rel. diff':>15}")
    for m in args.widths:
        params0 = KernelTransformer(d=args.d, m=m).init(0, torch.float32)
        config = TrainConfig(method="projgd", steps=args.steps, lr=1.75 / math.sqrt(4000), radius=3.0,
                             record_every=E3_RECORD_EVERY)
        fused, plain = KernelTransformer(d=args.d, m=m), KernelTransformer(d=args.d, m=m, fused=False)
        t_ours, result = best_time(lambda: Trainer(fused, config).fit(params0, data))
        t_plain, _ = best_time(lambda: Trainer(plain, config).fit(params0, data), repeats=1)
        t_ref, ref = best_time(lambda: reference_final_loss(params0, X, y, args.steps, config.step_size), repeats=1)
        t_kernel, _ = best_time(lambda: [fused.loss_and_grad(params0, X, y) for _ in range(10)])
        ours = result.summary["last"]["train_loss"]
        flops = step_flops(X.shape[0], args.T, args.d, m)
        per_ours = t_ours / args.steps
        gflops = flops / per_ours / 1e9
        print(f"{m:>5} {flops / 1e9:>10.3f} {per_ours:>15.4f} {t_ref / args.steps:>10.4f} "
              f"{t_ref / t_ours:>8.1f}x {t_plain / args.steps:>11.4f} {t_kernel / 10:>12.4f} {gflops:>8.1f} "
              f"{gflops / peak:>9.1%} {abs(ours - ref) / abs(ref):>15.2e}")


if __name__ == "__main__":
    main()
