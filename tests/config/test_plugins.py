"""A model defined outside the package (docs/examples/linear_attention.py, copied into a temporary
folder as its own module) is trained, swept and reproduced through the CLI, its sweep workers
importing it too; bad plugins are refused with exit status 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import attnlab

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "linear_attention.py"
MODULE = "attnlab_test_linear_attention"   # the plugin's module name, unique in the test session
SRC = Path(attnlab.__file__).parents[1]
SMALL = {"model": {"name": "linear-attn", "m": 4}, "data": {"n": 60, "K": 32, "T": 5, "d": 3},
         "train": {"steps": 15}}


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    shutil.copy(EXAMPLE, folder / f"{MODULE}.py")
    return folder


def cli(plugin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m attnlab.cli ARGS` with the plugin's folder and this attnlab on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(SRC)])}
    return subprocess.run([sys.executable, "-m", "attnlab.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


IN_PYTHON = f"""
from typing import Literal

import pytest
from attnlab.config import ConfigError, ModelSection, load_plugins, parse_config
from attnlab.run import run_id, train

SMALL = {SMALL!r}
with pytest.raises(ConfigError, match="model.name = 'linear-attn': allowed: kernel-transformer, shallow-encoder, indrnn$"):
    parse_config(SMALL)
load_plugins(["{MODULE}"])
config = parse_config(SMALL)
assert config.model.name == "linear-attn" and config.model.width == 4
assert run_id(config) != run_id(parse_config({{**SMALL, "model": {{"name": "kernel-transformer", "m": 4}}}}))
with pytest.raises(ConfigError, match="model.name = 'nope': allowed: kernel-transformer, shallow-encoder, indrnn, linear-attn$"):
    parse_config({{"model": "nope"}})
result = train(config)
assert len(result.curves) == 16 and result.summary["run_id"] == run_id(config)
with pytest.raises(TypeError, match="model.name = 'linear-attn' is taken by {MODULE}.LinearAttentionConfig"):
    type("Other", (ModelSection,), {{"__annotations__": {{"name": Literal["linear-attn"]}}, "name": "linear-attn"}})

# a data generator and a recorder of this script's own
import torch
from attnlab.config import DataSection
from attnlab.data import generates
from attnlab.data.dataset import Dataset
from attnlab.recorder import RunRecorder
from attnlab.train.recorders import RecorderEntry, register


class LastToken(DataSection):
    name: Literal["last-token"] = "last-token"
    n: int = 20
    T: int = 4
    d: int = 3

    tokens = property(lambda self: self.T)
    n_samples = n_train = property(lambda self: self.n)
    n_val = property(lambda self: 0)

    def with_samples(self, n_train):
        return self.model_copy(update={{"n": min(self.n, n_train)}})


@generates(LastToken)
def _last_token(config, seed, device):
    X = torch.randn(config.n, config.T, config.d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return Dataset(X, X[:, -1, 0], X[:0], X[:0, -1, 0])


class ParamNorm(RunRecorder):
    def __init__(self, every):
        self.every = every

    def __call__(self, step, params):
        return {{"param_norm": float(sum((p**2).sum() for p in params.values()) ** 0.5)}}


register(RecorderEntry("param_norm", 1, lambda c: ParamNorm(c.every)))
own = train({{**SMALL, "data": {{"name": "last-token", "n": 12}}, "diagnostics": {{"record": {{"param_norm": 5}}}}}})
assert own.curves["param_norm"].notna().sum() == 4   # steps 0, 5, 10, 15
with pytest.raises(ValueError, match="'param_norm': the name is taken"):
    register(RecorderEntry("param_norm", 2, lambda c: ParamNorm(c.every)))

# a kind of claim, in a module an experiment file names
import pathlib
pathlib.Path("claim_plugin.py").write_text(
    "from typing import Literal\\nfrom attnlab.experiments.claims import ClaimBase\\n"
    "class Above(ClaimBase):\\n    kind: Literal['above'] = 'above'\\n    floor: float\\n")
pathlib.Path("e.yaml").write_text(
    "paper: p\\ntitle: t\\nplugins: [claim_plugin]\\nexperiments:\\n  A1:\\n    title: t\\n    claim: c\\n"
    "    base: {{}}\\n    x: model.m\\n    claims: [{{kind: above, metric: best.train_loss, quantity: q, floor: 1}}]\\n"
    "    presets: {{quick: {{axes: {{model.m: [2, 4]}}}}}}\\n")
from attnlab.experiments.spec import load_experiments
(claim,) = load_experiments("e.yaml").experiments["A1"].claims
assert type(claim).__name__ == "Above" and claim.floor == 1
print("ok")
"""


def test_plugins_add_models_data_recorders_and_claim_kinds(plugin_dir, tmp_path):
    """In a process of its own, so that the plugins stay out of this test session's registries."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(SRC)])}
    checked = subprocess.run([sys.executable, "-c", IN_PYTHON], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    assert checked.returncode == 0 and checked.stdout.strip() == "ok", checked.stderr


def test_a_plugin_model_trains_sweeps_and_is_reproduced_from_the_cli(plugin_dir, tmp_path):
    runs = tmp_path / "runs"
    trained = cli(plugin_dir, "--plugin", MODULE, "train", "--model", "linear-attn", "--m", "4", "--n", "60",
                  "--K", "32", "--T", "5", "--d", "3", "--steps", "15", "--out", str(runs), "--quiet", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "run directory" in trained.stdout

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: linear\nplugins: [{MODULE}]\n"
                     "base: {model: {name: linear-attn}, data: {n: 60, K: 32, T: 5, d: 3}, train: {steps: 15}}\n"
                     "axes: {model.m: [2, 4]}\nseeds: 2\n")
    swept = cli(plugin_dir, "sweep", str(sweep), "--root", str(runs), "--workers", "2", "--threads", "1",
                "--quiet", cwd=tmp_path)   # spawned workers import the plugin
    assert swept.returncode == 0, swept.stderr
    table = pd.read_parquet(runs / "linear.parquet")
    assert list(table["status"]) == ["done"] * 4 and set(table["model.name"]) == {"linear-attn"}

    experiments = tmp_path / "linear.yaml"
    experiments.write_text(f"""
paper: a plugin's experiment
title: Linear attention
plugins: [{MODULE}]
experiments:
  L1:
    title: Training loss against width
    claim: Wider linear attention trains no worse.
    base:
      model: {{name: linear-attn}}
      data: {{n: 60, K: 32, T: 5, d: 3}}
      train: {{steps: 15}}
    x: model.m
    claims:
      - {{metric: last.train_loss, quantity: final training loss, fit: power}}
    presets:
      quick: {{axes: {{model.m: [2, 4]}}, seeds: 2}}
""")
    reproduced = cli(plugin_dir, "reproduce", str(experiments), "--out", str(tmp_path / "results"), "--quiet",
                     cwd=tmp_path)
    assert reproduced.returncode == 0, reproduced.stderr
    assert "L1 final training loss" in reproduced.stdout
    results = pd.read_csv(tmp_path / "results" / "linear" / "quick" / "L1" / "results.csv")
    assert list(results["status"]) == ["done"] * 4
    assert set(results["run_id"]) <= {p.name for p in (tmp_path / "results" / "runs").iterdir()}


def test_unknown_plugins_are_refused_naming_them(plugin_dir, tmp_path):
    missing = cli(plugin_dir, "--plugin", "no_such_plugin", "train", "--steps", "2", cwd=tmp_path)
    assert missing.returncode == 2
    assert "--plugin 'no_such_plugin': no such module" in missing.stderr
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("plugins: [no_such_plugin]\nbase: {train: {steps: 2}}\n")
    refused = cli(plugin_dir, "sweep", str(sweep), "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "plugins.0 = 'no_such_plugin': no such module" in refused.stderr
    unknown = cli(plugin_dir, "train", "--model", "linear-attn", "--steps", "2", cwd=tmp_path)   # not loaded
    assert unknown.returncode == 2
    assert "model.name = 'linear-attn': allowed: kernel-transformer, shallow-encoder, indrnn" in unknown.stderr
