"""Sweep engine costs, each measured against a reference in the same run.

1. Overhead per run of the local executor: run_sweep (in-process, workers=1) against a plain loop of
   attnlab.run.run over the same configs (each run about 1 s on one thread).
2. Process pool: run_sweep with workers=2 against in-process, throughput ratio (includes spawning).
3. Dask: throughput of a LocalCluster with two single-threaded workers against one worker (clusters
   started and warmed before timing).
4. Seed batching: attnlab.run.run_many on a seed group against one run() per seed.

    PYTHONPATH=src python benchmarks/sweep_overhead.py [--runs 8] [--skip-dask]

On a shared machine the parallel ratios are bounded by the cores actually free: the load average is
printed with the results.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from attnlab import run as run_module
from attnlab.sweep.grid import expand, parse_sweep
from attnlab.run import open_store, run_many
from attnlab.sweep.runner import run_sweep

BASE = {"model": {"name": "kernel-transformer", "m": 16},
        "data": {"name": "teacher", "n": 100, "T": 8, "d": 4, "K": 256},
        "train": {"method": "projgd", "steps": 200}}


def configs(runs: int, offset: int = 0):
    """`runs` configs that differ only by seed (about 1 s each on one thread)."""
    return expand(parse_sweep({"base": BASE, "seeds": list(range(offset, offset + runs))}))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh() -> Path:
    return Path(tempfile.mkdtemp(prefix="attnlab-bench-"))


def overhead(runs: int, repeats: int = 3) -> None:
    cs = configs(runs)
    run_sweep(cs[:1], open_store(fresh()), run_many, workers=1, progress=False)  # warm imports and caches
    direct, swept = [], []
    for _ in range(repeats):  # alternate, keep the best of each (the machine may be shared)
        direct.append(timed(lambda: [run_module.run(c, fresh()) for c in cs]))
        root = fresh()
        swept.append(timed(lambda: run_sweep(cs, open_store(root), run_many, workers=1, progress=False)))
    bookkeeping = timed(lambda: run_sweep(cs, open_store(root), run_many, workers=1, progress=False)) / runs  # plan + table only
    d, s = min(direct), min(swept)
    print(f"[overhead] {runs} runs, {d / runs:.3f} s per run direct (best of {repeats}); sweep/direct = "
          f"{s / d:.3f}; overhead per run = {(s - d) / runs * 1000:.1f} ms = {(s - d) / d:+.1%} of a run; "
          f"plan + table of a finished run {bookkeeping * 1000:.1f} ms")


def pool(runs: int) -> None:
    from attnlab.sweep.executors import LocalExecutor

    cs = configs(runs, offset=1000)
    inline = timed(lambda: run_sweep(cs, open_store(fresh()), run_many, workers=1, progress=False))
    pooled = timed(lambda: run_sweep(cs, open_store(fresh()), run_many, workers=2, threads=1, progress=False))
    start_up = timed(lambda: list(LocalExecutor(workers=2, threads=1).map([[], []], fresh())))
    print(f"[pool] {runs} runs: in-process {inline:.2f} s, pool of 2 {pooled:.2f} s, throughput ratio "
          f"{inline / pooled:.2f}x; of which starting the pool (once per sweep) {start_up:.2f} s")


def dask(runs: int) -> None:
    from distributed import Client, LocalCluster

    from attnlab.sweep.executors import DaskExecutor

    times = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
            executor = DaskExecutor(client)
            list(executor.map([[c] for c in configs(workers, offset=2000)], fresh()))  # warm every worker
            cs = configs(runs, offset=3000 + 100 * workers)
            times[workers] = timed(lambda: run_sweep(cs, open_store(fresh()), run_many, executor=executor, progress=False))
    print(f"[dask] {runs} runs: 1 worker {times[1]:.2f} s, 2 workers {times[2]:.2f} s, "
          f"throughput ratio {times[1] / times[2]:.2f}x")


def seed_batching(runs: int) -> None:
    cs = configs(runs, offset=4000)
    one_by_one = timed(lambda: [run_module.run(c, fresh()) for c in cs])
    batched = timed(lambda: run_module.run_many(cs, fresh()))
    print(f"[seed batching] {runs} seeds: one by one {one_by_one:.2f} s, run_many {batched:.2f} s, "
          f"speed-up {one_by_one / batched:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"cores {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}")
    overhead(args.runs)
    pool(args.runs)
    if not args.skip_dask:
        dask(args.runs)
    seed_batching(args.runs)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
