"""Runs that differ only by seed: one stacked computation (Trainer.fit_many) against one run after
another (Trainer.fit), in the same process, on the E3 setting (n = 5000, T = 16, d = 8).

Prints seconds per step of all S runs both ways, the speed-up, and the largest relative difference
of the final training losses (stacked kernels may round differently in the last bit).

    python benchmarks/bench_seed_stacking.py [--widths 8 32 128 256] [--seeds 10] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from attnlab.config import TrainConfig
from attnlab.data.teacher import teacher_data
from attnlab.models.kernel_transformer import KernelTransformer
from attnlab.train.trainer import Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128, 256])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = [teacher_data(args.n, 16, 8, seed=s, K=256).to(torch.float32, args.device) for s in range(args.seeds)]
    config = TrainConfig(method="projgd", steps=args.steps, lr=1.75 / 4000**0.5, radius=3.0, record_every=10)
    print(f"device {args.device}, threads {torch.get_num_threads()}, {args.seeds} seeds, {args.steps} steps, "
          f"n_train = {data[0].X_train.shape[0]}")
    print(f"{'m':>5} {'one by one s/step':>18} {'stacked s/step':>15} {'speed-up':>9} {'loss rel. diff':>15}")
    for m in args.widths:
        model = KernelTransformer(d=8, m=m)
        params0 = [model.init(s, torch.float32, args.device) for s in range(args.seeds)]
        trainer = Trainer(model, config)
        trainer.fit_many(params0[:2], data[:2], [0, 1])                      # warm-up
        start = time.perf_counter()
        single = [trainer.fit(p, d) for p, d in zip(params0, data)]
        t_single = time.perf_counter() - start
        start = time.perf_counter()
        stacked = trainer.fit_many(params0, data, list(range(args.seeds)))
        t_stacked = time.perf_counter() - start
        diff = max(abs(a.summary["last"]["train_loss"] - b.summary["last"]["train_loss"]) / b.summary["last"]["train_loss"]
                   for a, b in zip(stacked, single))
        print(f"{m:>5} {t_single / args.steps:>18.4f} {t_stacked / args.steps:>15.4f} "
              f"{t_single / t_stacked:>8.2f}x {diff:>15.2e}")


if __name__ == "__main__":
    main()
