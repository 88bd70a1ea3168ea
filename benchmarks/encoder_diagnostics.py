"""Cost of the per-epoch encoder diagnostics against plain training (issue 5, performance).

Trains the W1 setting (N = 100 random sequences, T = 10, d = 100, LeCun, tau_0 = d_m^-1/2, gamma = 1)
for a few epochs twice from the same initialisation: without diagnostics (the reference) and with
every diagnostic each epoch and the NTK every `--ntk-every` epochs. Prints both wall times and the ratio.

    python benchmarks/encoder_diagnostics.py --d-m 2048 --epochs 30 [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from attnlab.config import (DiagnosticsConfig, RandomSequencesConfig, RunConfig, ShallowEncoderConfig,
                            TrainConfig)
from attnlab.run import train


def timed(config: RunConfig) -> float:
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    train(config)
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-m", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--ntk-every", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    base = RunConfig(model=ShallowEncoderConfig(d_m=args.d_m),
                     data=RandomSequencesConfig(n=100, T=10, d=100),
                     train=TrainConfig(method="gd", steps=args.epochs, lr=1.0, record_every=1),
                     device=args.device)
    with_diag = base.model_copy(update={"diagnostics": DiagnosticsConfig(record={"attention": 1, "weight_change": 1, "ntk": args.ntk_every})})
    timed(base.model_copy(update={"train": TrainConfig(method="gd", steps=2, lr=1.0)}))   # warm-up
    plain = min(timed(base) for _ in range(args.repeats))
    diag = min(timed(with_diag) for _ in range(args.repeats))
    print(f"d_m={args.d_m} epochs={args.epochs} ntk_every={args.ntk_every} device={args.device} "
          f"threads={torch.get_num_threads()}")
    print(f"plain GD           {plain:8.2f} s  ({plain / args.epochs * 1e3:.1f} ms/epoch)")
    print(f"with diagnostics   {diag:8.2f} s  ({diag / args.epochs * 1e3:.1f} ms/epoch)")
    print(f"ratio diagnostics / plain = {diag / plain:.2f}  (issue 5 asks for at most 3)")


if __name__ == "__main__":
    main()
