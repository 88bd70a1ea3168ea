"""Full-batch ProjGD steps: attnlab's trainer against a plain PyTorch reference, in one process.

The reference is written the obvious way: autograd through an einsum forward pass, torch.optim.SGD,
and a Python-level loop projecting each head's blocks. Both start from the same parameters on the
same data; the script prints seconds per step, the speed-up, the achieved GFLOP/s against a large
matrix multiply measured in the same run, and the relative difference of the losses after 50 steps.

    python benchmarks/bench_projgd.py [--widths 64 256] [--steps 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from attnlab.config import TrainConfig
from attnlab.data.teacher import teacher_data
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.train.trainer import Trainer


def reference_losses(params0, X, y, steps, lr, rho=3.0):
    """The obvious implementation; returns the training loss at every step."""
    m = params0["c"].shape[0]
    W, U, c = (params0[k].clone().requires_grad_() for k in ("W", "U", "c"))
    W0, U0, c0 = (params0[k].clone() for k in ("W", "U", "c"))
    opt = torch.optim.SGD([W, U, c], lr=lr)
    radius = rho / math.sqrt(m)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        z = torch.einsum("btd,mde,be->bmt", X, W, X[:, -1])
        a = torch.einsum("bmt,btd->bmd", torch.softmax(z, dim=-1), X)
        f = torch.tanh(torch.einsum("bmd,md->bm", a, U)) @ c / math.sqrt(m)
        loss = ((f - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        with torch.no_grad():
            for P, P0 in ((W, W0), (U, U0), (c, c0)):
                for i in range(m):
                    diff = P[i] - P0[i]
                    norm = diff.norm()
                    if norm > radius:
                        P[i] = P0[i] + diff * (radius / norm)
    return losses


def step_flops(n, T, d, m):
    """Multiply-adds of one analytic forward + backward step, counted as 2 flops each."""
    return 2 * n * m * (2 * d * d + 4 * T * d + 2 * d) + 8 * n * m * T


def matmul_gflops(device, size=2048, repeats=5):
    A = torch.randn(size, size, device=device)
    B = torch.randn(size, size, device=device)
    A @ B
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        A @ B
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = teacher_data(args.n, args.T, args.d, seed=0, K=512, val_fraction=0.0).to(torch.float32, args.device)
    X, y = data.X_train, data.y_train
    peak = matmul_gflops(args.device)
    print(f"device {args.device}, threads {torch.get_num_threads()}, float32, n={X.shape[0]} T={args.T} d={args.d}, "
          f"{args.steps} steps; matmul reference {peak:.1f} GFLOP/s")
    print(f"{'m':>5} {'attnlab s/step':>15} {'reference s/step':>17} {'speed-up':>9} {'GFLOP/s':>8} "
          f"{'of matmul':>10} {'loss rel. diff':>15}")
    for m in args.widths:
        model = KernelTransformer(d=args.d, m=m)
        params0 = model.init(0, torch.float32, args.device)
        config = TrainConfig(method="projgd", steps=args.steps, lr=1.75 / math.sqrt(4000), radius=3.0,
                             record_every=1)
        trainer = Trainer(model, config)
        t_ours, result = timed(lambda: trainer.fit(params0, data), args.device)
        t_ref, ref = timed(lambda: reference_losses(params0, X, y, args.steps, config.step_size), args.device)
        ours = result.curves.set_index("step")["train_loss"]
        diff = abs(ours[args.steps - 1] - ref[-1]) / abs(ref[-1])
        per_ours, per_ref = t_ours / args.steps, t_ref / args.steps
        gflops = step_flops(X.shape[0], args.T, args.d, m) / per_ours / 1e9
        print(f"{m:>5} {per_ours:>15.4f} {per_ref:>17.4f} {per_ref / per_ours:>8.1f}x {gflops:>8.1f} "
              f"{gflops / peak:>9.1%} {diff:>15.2e}")


if __name__ == "__main__":
    main()
