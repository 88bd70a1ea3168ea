"""One training step of the shallow encoder at d_m = 2048 (W1 and W5), end to end, against plain
autograd PyTorch.

Cases: W1 (N = 100 random sequences, T = 10, d = 100, flatten, tau_0 = d_m^-1/2, GD at lr 1, a
row per step) and W5 (1000 digits as T = 4 patches of d = 16, ten outputs, GD at lr 0.25), both at
d_m = 2048, float32. attnlab is timed as `reproduce` runs the experiment: `Trainer.fit_many` with the
experiment's sections, so the validation loss, the per-block gradient norms and distances from
theta_0, the best iterate and the running average are part of the step. A step's time is the
difference of the best times of runs of 2N and N steps (setup and summaries cancel).

Reference (in the same run, alternating with attnlab): what a user writes with autograd: the same
forward pass (`ShallowEncoder.forward`, plain PyTorch) on leaf tensors, the squared loss, backward,
each block's gradient norm, an in-place SGD step, the validation loss under no_grad (W5; W1 has no validation set) and a copy of
the parameters when the training loss improves. It keeps no running average.

Arithmetic (FLOP, one multiply-add = 2): the model's `sample_flops` (forward and loss gradient per
sample) over the training set, plus a forward pass over the validation set. At d_m = 2048 the
encoder's W_H alone (d_m x T d_m) is 168 MB (W1) or 67 MB (W5), so every elementwise pass over the
parameters is memory-bound; the rate is compared with a 2048 x 2048 float32 matrix product timed on
the same threads between the cases.

    PYTHONPATH=src python benchmarks/bench_encoder_step.py [--threads 1] [--steps 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math

import torch

from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.models.losses import squared_loss
from attnlab.run import setup
from bench_sequence_step import attnlab_fit, instruction_set, matmul_rate, seconds


def paper_config(key: str, series: str | None, d_m: int):
    experiment = experiment_file("wu2023").experiments[key]
    configs = experiment_configs(key, experiment, "paper")
    pool = configs[series] if series else [c for cs in configs.values() for c in cs]
    return next(c for c in pool if c.model.d_m == d_m and c.seed == 0)


def reference_run(model, params0, data, steps: int, lr: float, loss_kind: str) -> float:
    """`steps` GD steps with autograd; the training loss of the last step."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params0.items()}
    average = {k: v.clone() for k, v in params0.items()}
    best_loss, loss = math.inf, torch.tensor(math.nan)
    for k in range(steps):
        loss = squared_loss(model(params, data.X_train), data.y_train, loss_kind)
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            norms = [float(g.norm()) for g in grads]   # noqa: F841 (logged)
            distances = [float((p - params0[n]).norm()) for n, p in params.items()]   # noqa: F841 (logged)
            for n, p in params.items():
                average[n] += (p - average[n]) / (k + 1)
            for p, g in zip(params.values(), grads):
                p.sub_(g, alpha=lr)
            if len(data.X_val):
                val = float(squared_loss(model(params, data.X_val), data.y_val, loss_kind))   # noqa: F841 (logged)
        if float(loss.detach()) < best_loss:
            best_loss = float(loss.detach())
            best = {k: v.detach().clone() for k, v in params.items()}   # noqa: F841 (kept)
    return float(loss.detach())


def measure(config, steps: int, repeats: int) -> tuple[float, ...]:
    """(FLOP per step, attnlab s/step, reference s/step, their training losses after 5 steps)."""
    s = setup(config)
    fit = attnlab_fit(config, s)
    lr, kind = config.train.step_size, config.train.loss or s.model.default_loss
    reference = lambda n: reference_run(s.model, s.params0, s.data, n, lr, kind)   # noqa: E731
    fit(1), reference(1)
    best = {"short": math.inf, "long": math.inf, "reference": math.inf}
    for _ in range(repeats):
        best["short"] = min(best["short"], seconds(lambda: fit(steps)))
        best["reference"] = min(best["reference"], seconds(lambda: reference(steps)))
        best["long"] = min(best["long"], seconds(lambda: fit(2 * steps)))
    curves = fit(5).curves
    loss = float(curves.loc[curves["step"] == 4, "train_loss"].iloc[0])
    per, B, V = s.model.sample_flops(config.data.tokens), s.data.X_train.shape[0], s.data.X_val.shape[0]
    flops = B * per.gradient + V * per.forward
    return flops, (best["long"] - best["short"]) / steps, best["reference"] / steps, loss, reference(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, rates = [], [matmul_rate()]
    for name, config in (("W1 d_m=2048", paper_config("W1", None, 2048)),
                         ("W5 d_m=2048 (sqrt)", paper_config("W5", "sqrt", 2048))):
        flops, step, reference, loss, ref_loss = measure(config, args.steps, args.repeats)
        rows.append((name, flops, step, reference, abs(loss - ref_loss) / abs(ref_loss)))
        rates.append(matmul_rate())
    rate = max(rates)
    print(f"cpu {instruction_set()}, {args.threads} thread(s), float32; 2048^2 matmul {rate / 1e9:.1f} GFLOP/s "
          f"(best of {len(rates)} measurements between the cases, lowest {min(rates) / 1e9:.1f})")
    print("reference: the same forward pass under autograd; gradient norms, distances from theta_0, running "
          "mean, in-place SGD, validation loss and a best copy")
    print(f"{'case':<22}{'GFLOP/step':>11}{'attnlab ms':>12}{'reference ms':>14}{'speed-up':>10}"
          f"{'GFLOP/s':>9}{'of matmul':>11}{'loss rel. diff (5 steps)':>26}")
    for name, flops, step, reference, diff in rows:
        print(f"{name:<22}{flops / 1e9:>11.2f}{step * 1e3:>12.0f}{reference * 1e3:>14.0f}"
              f"{reference / step:>9.2f}x{flops / step / 1e9:>9.1f}{flops / step / rate:>10.0%}{diff:>26.1e}")


if __name__ == "__main__":
    main()
