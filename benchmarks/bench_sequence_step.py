"""One training step of the sequence experiments, end to end, against plain autograd PyTorch.

Cases: E4's two models at L = 4 and L = 96 (n = 5000 windows of T = L + 1 tokens, d = 17, m = 64,
full-batch GD at lr 0.05, float32) and the Transformer at E5's longest sequences (T = 1024, d = 8,
m = 64, ProjGD). attnlab is timed as the experiment runs it: `Trainer.fit_many` with the experiment's
train and diagnostics sections, so the validation loss, the gradient-norm records, best-iterate
tracking and the projection are part of the step. Each step is timed on its own (from one step's
end to the next one's); a step's time is, for every step index, the fastest of --repeats runs,
averaged over the indices, so that a record taken every few steps counts at its share while the
shared cores' drift, which only ever adds time, drops out. attnlab's runs and the reference's
alternate within each repeat.

Reference (measured in the same run): the loop of the authors' published trainer written the way
their code is, in plain autograd PyTorch: the Transformer as einsums and a softmax, the IndRNN as a
Python loop over t with W_in x_t per step; per step forward, MSE, backward, the gradient norm of
every block, an SGD step, the projection (ProjGD only), the validation loss under no_grad and a copy
of the parameters when it improves.

Arithmetic (FLOP, one multiply-add = 2), counted from the shapes, with B training and V validation
samples:
  Transformer, per sample and head: W x_T d^2, logits T d, read-outs T d, attended token and
    M U 2 T d (gradient pass only), gradient of W d^2 and of U d; the validation forward needs
    W x_T, logits and read-outs. Exponentials are not counted.
  IndRNN, per sample, step and unit: drive 2 d and recurrence 2 (forward), input-weight gradient 2 d
    and the backward's products 6; tanh evaluations are not counted.
The rate is compared with a 2048 x 2048 float32 matrix product timed on the same threads before
and after every case (the best of them: these shared cores' speed drifts). The reference's steps are
timed the same way. Also printed: the median step of all runs (what a busy machine gives), the
instruction set the kernels were compiled for and the relative difference of the training loss after
20 steps (attnlab against the reference).

    PYTHONPATH=src python benchmarks/bench_sequence_step.py [--threads 2] [--steps 10] [--repeats 5]
        [--reference-steps 4]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from attnlab.config import RunConfig
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import setup
from attnlab.train.recorders import build_recorders
from attnlab.train.trainer import Trainer


def instruction_set() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    words = set(flags.split())
    return "AVX-512" if "avx512f" in words else "AVX2" if "avx2" in words else "no AVX2"


def matmul_rate(repeats: int = 5) -> float:
    A = torch.randn(2048, 2048)
    A @ A
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        A @ A
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


def transformer_flops(B: int, V: int, T: int, d: int, m: int) -> float:
    train = B * m * 2 * (d * d + 4 * T * d + d * d + d)
    val = V * m * 2 * (d * d + 2 * T * d)
    return train + val


def indrnn_flops(B: int, V: int, T: int, d: int, m: int) -> float:
    return B * T * m * (4 * d + 8) + V * T * m * (2 * d + 2)


# ------------------------------------------------------------------------- the reference
class ReferenceTransformer(torch.nn.Module):
    """The authors' formulation: einsums over (B, m, T) logits, softmax over tokens."""

    def __init__(self, params: dict):
        super().__init__()
        self.W, self.U, self.c = (torch.nn.Parameter(params[k].clone()) for k in ("W", "U", "c"))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        xT = X[:, -1]
        Wx = torch.einsum("mdk,bk->bmd", self.W, xT)
        alpha = torch.softmax(torch.einsum("btd,bmd->bmt", X, Wx), dim=-1)
        a = torch.einsum("btd,bmt->bmd", X, alpha)
        s = torch.einsum("md,bmd->bm", self.U, a)
        return torch.tanh(s) @ self.c / math.sqrt(self.c.shape[0])


class ReferenceIndRNN(torch.nn.Module):
    """The authors' formulation: a Python loop over t, W_in x_t computed at each step."""

    def __init__(self, params: dict):
        super().__init__()
        self.W_in, self.u, self.c = (torch.nn.Parameter(params[k].clone()) for k in ("W_in", "u", "c"))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(X.shape[0], self.u.shape[0], dtype=X.dtype)
        for t in range(X.shape[1]):
            h = torch.tanh(torch.einsum("md,bd->bm", self.W_in, X[:, t]) + self.u * h)
        return h @ self.c / math.sqrt(self.c.shape[0])


def reference_run(module: torch.nn.Module, data, steps: int, lr: float, radius: float | None,
                  clock: list[float] | None = None) -> float:
    """`steps` steps of the published trainer's loop; the training loss of the last step. The time
    at the end of every step is appended to `clock`."""
    X, y, Xv, yv = data.X_train, data.y_train, data.X_val, data.y_val
    optimiser = torch.optim.SGD(module.parameters(), lr=lr)
    centre = [p.detach().clone() for p in module.parameters()]
    limit = None if radius is None else radius / math.sqrt(module.c.shape[0])
    best_val, loss = math.inf, torch.tensor(math.nan)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(module(X), y)
        loss.backward()
        norms = {name: float(p.grad.norm()) for name, p in module.named_parameters()}   # noqa: F841 (logged)
        optimiser.step()
        if limit is not None:
            with torch.no_grad():
                for p, p0 in zip(module.parameters(), centre):
                    diff = (p - p0).reshape(p.shape[0], -1)
                    factor = (limit / diff.norm(dim=1).clamp(min=1e-12)).clamp(max=1.0)
                    p.copy_(p0 + (diff * factor.unsqueeze(1)).view_as(p))
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(module(Xv), yv))
        if val < best_val:
            best_val = val
            best = {k: v.detach().clone() for k, v in module.state_dict().items()}   # noqa: F841 (kept)
        if clock is not None:
            clock.append(time.perf_counter())
    return float(loss.detach())


# ------------------------------------------------------------------------- the cases
def paper_config(key: str, series: str | None, x: str, value: int) -> RunConfig:
    experiment = experiment_file("arda2026").experiments[key]
    configs = experiment_configs(key, experiment, "paper")
    pool = configs[series] if series else [c for cs in configs.values() for c in cs]
    field, name = x.split(".")
    return next(c for c in pool if getattr(getattr(c, field), name) == value and c.seed == 0)


def cases() -> list[tuple[str, RunConfig]]:
    e4 = [(f"{s} L={L}", paper_config("E4", s, "data.L", L)) for s in ("indrnn", "transformer") for L in (4, 96)]
    e5 = paper_config("E5", None, "data.T", 1024)
    # The teacher's labels do not change the cost of a step: a cheap teacher, and no gap reference.
    e5 = e5.model_copy(update={"data": e5.data.model_copy(update={"K": 64}),
                               "train": e5.train.model_copy(update={"reference": None})})
    return [*e4, ("transformer T=1024 (E5)", e5)]


def attnlab_fit(config: RunConfig, s):
    """fit(n, clock=None): n steps of the experiment's trainer from the experiment's initialisation
    (s: setup(config)); with `clock`, the time at the end of every step is appended to it."""
    def fit(n: int, clock: list[float] | None = None):   # the experiment's step size, whatever the number of steps
        train = config.train.model_copy(update={"steps": n, "lr": config.train.step_size})
        recorders = build_recorders(config.diagnostics, s.model, s.params0, s.data, train)
        progress = None if clock is None else (lambda k, loss: clock.append(time.perf_counter()))
        trainer = Trainer(s.model, train, progress=progress)
        return trainer.fit_many([s.params0], [s.data], [config.seed], [recorders])[0]

    return fit


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def step_durations(run, steps: int) -> list[float]:
    """Seconds of each step of `run(steps, clock)` but the first (which follows the setup): a step runs
    from the end of the previous one to its own end."""
    clock: list[float] = []
    run(steps, clock)
    return [b - a for a, b in zip(clock, clock[1:])]


def summarise(runs: list[list[float]]) -> tuple[float, float]:
    """(fastest, median) seconds per step of repeated runs: for every step index the fastest of the
    runs, averaged over the indices, and the median of all steps."""
    fastest = [min(run[i] for run in runs) for i in range(len(runs[0]))]
    return sum(fastest) / len(fastest), statistics.median(d for run in runs for d in run)


def measure(config: RunConfig, steps: int, reference_steps: int, repeats: int) -> tuple[float, ...]:
    """(FLOP per step, attnlab's fastest and median s/step, the reference's, their training losses
    after 20 steps). attnlab's and the reference's runs alternate, so that a drift of the machine's
    speed reaches both."""
    s = setup(config)
    fit = attnlab_fit(config, s)
    module = (ReferenceIndRNN if config.model.name == "indrnn" else ReferenceTransformer)(s.params0)
    radius = None if config.train.method == "gd" else float(config.train.radius.w)
    lr = config.train.step_size
    reference = lambda n, clock: reference_run(module, s.data, n, lr, radius, clock)   # noqa: E731
    fit(2), reference(1, None)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(step_durations(fit, steps))
        theirs.append(step_durations(reference, reference_steps))
    curves = fit(20).curves
    loss = float(curves.loc[curves["step"] == 19, "train_loss"].iloc[0])
    ref_loss = reference_run(type(module)(s.params0), s.data, 20, lr, radius)
    (B, T, d), V, m = s.data.X_train.shape, s.data.X_val.shape[0], config.model.m
    flops = (indrnn_flops if config.model.name == "indrnn" else transformer_flops)(B, V, T, d, m)
    return flops, *summarise(ours), *summarise(theirs), loss, ref_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-steps", type=int, default=4)
    args = parser.parse_args()
    if min(args.steps, args.reference_steps) < 2:
        parser.error("--steps and --reference-steps must be at least 2 (the first step follows the setup "
                     "and is not timed)")
    torch.set_num_threads(args.threads)
    rows, rates = [], [matmul_rate()]
    for name, config in cases():
        flops, step, step_median, reference, reference_median, loss, ref_loss = measure(
            config, args.steps, args.reference_steps, args.repeats)
        rows.append((name, flops, step, step_median, reference, reference_median, abs(loss - ref_loss) / abs(ref_loss)))
        rates.append(matmul_rate())
    rate = max(rates)   # these shared cores' speed drifts: each case against the best rate of the run
    print(f"cpu {instruction_set()}, {args.threads} thread(s), float32; 2048^2 matmul {rate / 1e9:.1f} GFLOP/s "
          f"(best of {len(rates)} measurements between the cases, lowest {min(rates) / 1e9:.1f})")
    print("reference: the published trainer's loop in plain autograd PyTorch (einsum Transformer, "
          "loop-over-t IndRNN), with gradient norms, SGD, projection, validation and best copy")
    print(f"ms per step: each step index's fastest of {args.repeats} runs, averaged (median of all steps "
          "in brackets); speed-up and rate from the fastest")
    print(f"{'case':<26}{'GFLOP/step':>11}{'attnlab ms':>16}{'reference ms':>18}{'speed-up':>10}"
          f"{'GFLOP/s':>9}{'of matmul':>11}{'loss rel. diff (20 steps)':>27}")
    for name, flops, step, step_median, reference, reference_median, diff in rows:
        print(f"{name:<26}{flops / 1e9:>11.3f}{step * 1e3:>8.1f} ({step_median * 1e3:>5.1f})"
              f"{reference * 1e3:>9.1f} ({reference_median * 1e3:>6.1f}){reference / step:>9.1f}x"
              f"{flops / step / 1e9:>9.1f}{flops / step / rate:>10.0%}{diff:>27.1e}")


if __name__ == "__main__":
    main()
