"""The work behind `attnlab ntk`: the NTK at initialisation of a run config, summarised and saved."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from attnlab.config import RunConfig, config_to_dict
from attnlab.ntk.empirical import empirical
from attnlab.ntk.spectrum import summarize


def compute_ntk_report(config: RunConfig, n: int, method: str = "auto", out: str | Path = "ntk",
                       max_memory_gb: float | None = None) -> str:
    """Build model and data of `config`, take the float64 NTK of the first n training inputs at
    initialisation, write OUT/spectrum.npy (ascending eigenvalues) and OUT/ntk_summary.json, and
    return the printed summary. ValueError on bad input (e.g. n above the training set size)."""
    from attnlab.run import setup

    s = setup(config)
    available = s.data.X_train.shape[0]
    if n > available:
        raise ValueError(f"--n {n}: the config has only {available} training inputs "
                         f"(raise data.n with --n-data, or use --n <= {available})")
    X = s.data.X_train[:n]
    max_memory = None if max_memory_gb is None else max_memory_gb * 2**30
    K = empirical(s.model, X, params=s.params0, method=method, dtype=torch.float64, max_memory=max_memory)
    start = time.perf_counter()
    spec = summarize(K.total)
    eig_seconds = time.perf_counter() - start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "spectrum.npy", spec.eigenvalues)
    summary = {"n": n, "method": K.method, "lambda_min": spec.lambda_min, "lambda_max": spec.lambda_max,
               "condition_number": spec.condition_number, "trace": spec.trace,
               "block_traces": {k: float(v.trace()) for k, v in K.blocks.items()},
               "kernel_seconds": K.seconds, "eigh_seconds": eig_seconds, "config": config_to_dict(config)}
    (out / "ntk_summary.json").write_text(json.dumps(summary, indent=2))
    return "\n".join([
        f"NTK of {config.model.name} at initialisation on {n} training inputs (method {K.method}, float64)",
        f"smallest eigenvalue  {spec.lambda_min:.6g}",
        f"largest eigenvalue   {spec.lambda_max:.6g}",
        f"condition number     {spec.condition_number:.6g}",
        f"trace                {spec.trace:.6g}",
        f"time                 kernel {K.seconds:.3f} s, eigh {eig_seconds:.3f} s",
        f"spectrum saved to    {out / 'spectrum.npy'}",
    ])
