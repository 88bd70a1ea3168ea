"""Issue 15, item 10: a run is claimed before it is trained, so concurrent drivers share the work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import yaml
from typer.testing import CliRunner

import attnlab.run
from attnlab.cli import app
from attnlab.sweep.locks import RunLocks
from attnlab.sweep.grid import expand, parse_sweep
from attnlab.run import open_store, run_id

SWEEP = {"name": "c", "base": {"model": {"m": 4}, "data": {"n": 40, "K": 64, "T": 4, "d": 3},
                               "train": {"steps": 10}}, "axes": {"model.m": [4, 6]}, "seeds": 1}


def claim_as(root, config, pid, host=None):
    folder = RunLocks(root, run_id).folder
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "time": 0}
    RunLocks(root, run_id).path(config).write_text(json.dumps(owner))


def test_a_run_claimed_by_a_live_driver_is_waited_for_not_trained_twice(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    first, second = expand(parse_sweep(SWEEP))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])   # the other driver
    try:
        claim_as(root, first, other.pid)
        trained = []
        original = attnlab.run.train_many   # every training goes through it
        monkeypatch.setattr(attnlab.run, "train_many",
                            lambda configs, *a, **k: trained.extend(configs) or original(configs, *a, **k))

        def other_driver_finishes_first():   # once this driver has done its own run
            store = open_store(root)
            while not store.is_complete(second):
                threading.Event().wait(0.05)
            result = original([first])[0]
            store.write(first, result.curves, result.summary)
            RunLocks(root, run_id).path(first).unlink()

        helper = threading.Thread(target=other_driver_finishes_first)
        helper.start()
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(SWEEP))
        result = CliRunner().invoke(app, ["sweep", str(path), "--root", str(root), "--workers", "1", "--quiet"])
        helper.join()
    finally:
        other.kill()
        other.wait()
    assert result.exit_code == 0, result.output
    assert "2 runs: 2 done, 0 failed" in result.output
    assert trained == [second]   # the claimed run was not trained here
    assert not list(RunLocks(root, run_id).folder.iterdir())


def test_a_stale_claim_is_broken_and_the_run_trained(tmp_path):
    root = tmp_path / "runs"
    first, second = expand(parse_sweep(SWEEP))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    claim_as(root, first, int(dead))
    claim_as(root, second, os.getpid() + 10**7, host="another-host")   # fresh: kept ...
    os.utime(RunLocks(root, run_id).path(second), (0, 0))                        # ... until it expires
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    result = CliRunner().invoke(app, ["sweep", str(path), "--root", str(root), "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 runs: 2 done, 0 failed" in result.output
    assert not list(RunLocks(root, run_id).folder.glob("*.lock"))


def test_only_one_of_two_claimants_gets_the_claim(tmp_path):
    config, _ = expand(parse_sweep(SWEEP))
    assert RunLocks(tmp_path, run_id).take(config)
    child = subprocess.run([sys.executable, "-c", "import sys, yaml; from attnlab.config import parse_config; "
                            "from attnlab.sweep.locks import RunLocks; from attnlab.run import run_id; "
                            f"print(RunLocks({str(tmp_path)!r}, run_id)"
                            ".take(parse_config(yaml.safe_load(sys.stdin))))"],
                           input=yaml.safe_dump(config.model_dump(mode="json")), capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.stdout.strip() == "False"
    RunLocks(tmp_path, run_id).release(config)
    assert not RunLocks(tmp_path, run_id).path(config).exists()
