"""The work behind `attnlab ntk`: the NTK at initialisation of a run config, summarised and saved."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from attnlab.config import RunConfig, config_to_dict
from attnlab.ntk.empirical import empirical
from attnlab.ntk.operator import ntk_diagonal, ntk_operator
from attnlab.ntk.spectrum import lanczos_eigenvalues, summarize
from attnlab.run import setup


def compute_ntk_report(config: RunConfig, n: int, method: str = "auto", out: str | Path = "ntk",
                       max_memory_gb: float | None = None, lanczos: int | None = None) -> str:
    """Build model and data of `config`, take the float64 NTK of the first n training inputs at
    initialisation, write OUT/spectrum.npy (ascending eigenvalues) and OUT/ntk_summary.json, and
    return the printed summary. With `lanczos` = k the N x N kernel is never formed: the k smallest
    and the largest eigenvalue come from Lanczos on NTK-vector products, the trace from per-sample
    gradient norms, and spectrum.npy holds those k + 1 eigenvalues. ValueError on bad input (e.g. n
    above the training set size)."""
    s = setup(config)
    available = s.data.X_train.shape[0]
    if n > available:
        raise ValueError(f"--n {n}: the config has only {available} training inputs "
                         f"(raise data.n with --n-data, or use --n <= {available})")
    if lanczos is not None and not 1 <= lanczos < n - 1:
        raise ValueError(f"--lanczos {lanczos}: the number of smallest eigenvalues must be in 1..{n - 2}")
    X = s.data.X_train[:n]
    max_memory = None if max_memory_gb is None else max_memory_gb * 2**30
    start = time.perf_counter()
    if lanczos is None:
        K = empirical(s.model, X, params=s.params0, method=method, dtype=torch.float64, max_memory=max_memory)
        kernel_seconds, used, block_traces = K.seconds, K.method, {k: float(v.trace()) for k, v in K.blocks.items()}
        start = time.perf_counter()
        spec = summarize(K.total)
        eigenvalues, lambda_min, lambda_max, trace = spec.eigenvalues, spec.lambda_min, spec.lambda_max, spec.trace
    else:
        op = ntk_operator(s.model, X, params=s.params0)
        trace = float(ntk_diagonal(s.model, X, params=s.params0).sum())
        kernel_seconds, used, block_traces = time.perf_counter() - start, "lanczos (NTK-vector products)", {}
        start = time.perf_counter()
        eigenvalues = np.concatenate([lanczos_eigenvalues(op, k=lanczos),
                                      lanczos_eigenvalues(op, k=1, which="largest")])
        lambda_min, lambda_max = float(eigenvalues[0]), float(eigenvalues[-1])
    eig_seconds = time.perf_counter() - start
    condition = lambda_max / lambda_min if lambda_min > 0 else float("inf")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "spectrum.npy", eigenvalues)
    summary = {"n": n, "method": used, "lambda_min": lambda_min, "lambda_max": lambda_max,
               "condition_number": condition, "trace": trace, "block_traces": block_traces,
               "kernel_seconds": kernel_seconds, "eig_seconds": eig_seconds, "config": config_to_dict(config)}
    (out / "ntk_summary.json").write_text(json.dumps(summary, indent=2))
    return "\n".join([
        f"NTK of {config.model.name} at initialisation on {n} training inputs (method {used}, float64)",
        f"smallest eigenvalue  {lambda_min:.6g}",
        f"largest eigenvalue   {lambda_max:.6g}",
        f"condition number     {condition:.6g}",
        f"trace                {trace:.6g}",
        f"time                 kernel {kernel_seconds:.3f} s, eigenvalues {eig_seconds:.3f} s",
        f"spectrum saved to    {out / 'spectrum.npy'}",
    ])
