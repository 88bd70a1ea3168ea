"""The dask and SLURM (submitit) executors give the same table as the in-process executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from attnlab.sweep.executors import DaskExecutor, LocalExecutor, SlurmExecutor, make_executor
from attnlab.sweep.grid import expand, parse_sweep
from attnlab.run import open_store, run_many
from attnlab.sweep.runner import run_sweep

from sweeptools import comparable, run_dirs, subprocess_env, tiny_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def child_env(monkeypatch):
    """Child processes (dask workers, submitit jobs) import this checkout, one thread each."""
    for key, value in subprocess_env().items():
        monkeypatch.setenv(key, value)


def reference_table(configs, root):
    return comparable(run_sweep(configs, open_store(root), run_many, workers=1, progress=False))


def test_dask_cluster_with_a_killed_worker_gives_the_local_table(tmp_path, child_env):
    distributed = pytest.importorskip("distributed")
    configs = expand(parse_sweep(tiny_sweep(m_values=(4, 6, 8, 10), seeds=2)))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        executor = DaskExecutor(client)
        assert executor.parallelism == 2
        root = tmp_path / "dask"
        outcomes = executor.map([[c] for c in configs], open_store(root), run_many)
        seen = [next(outcomes)]  # one task finished: the other worker is busy, kill it midway
        victim = next(iter(client.run(os.getpid).values()))
        assert len(run_dirs(root)) < len(configs)  # the kill comes midway
        os.kill(victim, signal.SIGKILL)
        seen.extend(outcomes)
        assert sum(len(task) for task in seen) == len(configs)
        assert all(o.status == "done" for task in seen for o in task)
        table = comparable(run_sweep(configs, open_store(root), run_many, executor=executor, progress=False))
    assert len(run_dirs(root)) == len(configs)
    pd.testing.assert_frame_equal(table, reference_table(configs, tmp_path / "local"))


def test_dask_executor_needs_a_scheduler(tmp_path):
    with pytest.raises(ValueError, match="scheduler address"):
        make_executor("dask", tmp_path, scheduler=None)


@pytest.mark.parametrize("cluster", ["debug", "local"])
def test_slurm_path_through_submitit_gives_the_local_table(tmp_path, child_env, cluster):
    pytest.importorskip("submitit")
    configs = expand(parse_sweep(tiny_sweep(m_values=(4, 6), seeds=2)))
    root = tmp_path / "slurm"
    executor = make_executor("slurm", root, workers=2, cluster=cluster, time_min=5, mem_gb=1)
    assert isinstance(executor, SlurmExecutor) and executor.parallelism == 2
    table = comparable(run_sweep(configs, open_store(root), run_many, executor=executor, progress=False))
    assert (table["status"] == "done").all()
    assert (root / ".submitit").is_dir()  # job logs went to ROOT/.submitit
    pd.testing.assert_frame_equal(table, reference_table(configs, tmp_path / "local"))


@pytest.mark.parametrize("retries, status", [(1, "done"), (0, "failed")])
def test_submitit_job_that_dies_is_resubmitted_a_bounded_number_of_times(tmp_path, child_env, retries, status):
    """A job killed from outside (as SLURM kills on preemption) is resubmitted at most `retries` times."""
    pytest.importorskip("submitit")
    configs = expand(parse_sweep(tiny_sweep(m_values=(4,), seeds=1)))
    root = tmp_path / "slurm"
    executor = make_executor("slurm", root, cluster="local", retries=retries)
    engine = executor.executor
    real_map_array, real_submit, resubmitted = engine.map_array, engine.submit, []

    def map_array_then_kill(*args):
        jobs = real_map_array(*args)
        for job in jobs:  # kill the job's controller before it starts the task: no result, ever
            job._process.kill()  # noqa: SLF001
            job._process.wait()  # noqa: SLF001
        return jobs

    engine.map_array = map_array_then_kill
    engine.submit = lambda *args: resubmitted.append(args) or real_submit(*args)
    table = run_sweep(configs, open_store(root), run_many, executor=executor, progress=False)
    assert len(resubmitted) == retries
    assert list(table["status"]) == [status]
    if status == "failed":
        assert table["error"].iloc[0].startswith("UncompletedJobError")


def pool_workers() -> list[int]:
    """Pids of this process's multiprocessing pool workers (not the resource tracker)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"spawn_main" in command and b"resource_tracker" not in command:
                pids.append(int(pid))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("retries, status", [(2, "done"), (0, "failed")])
def test_local_pool_worker_that_dies_is_retried_a_bounded_number_of_times(tmp_path, child_env, retries, status):
    configs = expand(parse_sweep(tiny_sweep(m_values=(4, 6, 8), seeds=2)))
    root = tmp_path / "pool"
    outcomes = LocalExecutor(workers=2, threads=1, retries=retries).map([[c] for c in configs], open_store(root), run_many)
    seen = [next(outcomes)]
    victims = pool_workers()
    assert victims and len(run_dirs(root)) < len(configs)
    os.kill(victims[0], signal.SIGKILL)
    seen.extend(outcomes)
    statuses = [o.status for task in seen for o in task]
    assert len(statuses) == len(configs)
    if status == "done":
        assert set(statuses) == {"done"}
        pd.testing.assert_frame_equal(comparable(open_store(root).table(configs)),
                                      reference_table(configs, tmp_path / "local"))
    else:  # only the task of the killed worker is charged; every other run finishes
        assert statuses.count("failed") == 1
        table = open_store(root).table(configs)
        (error,) = table.loc[table["status"] == "failed", "error"]
        assert error == "RuntimeError: the worker running this task died (exit code -9; tried 1 times, retries = 0)"
        assert (table["status"] == "done").sum() == len(configs) - 1


def test_make_executor_takes_every_option_and_gives_each_executor_its_own(tmp_path):
    options = dict(threads=None, retries=3, scheduler=None, cluster=None, partition="p", time_min=5, mem_gb=1.0,
                   array_parallelism=None)
    local = make_executor("local", tmp_path, workers=1, **options)
    assert isinstance(local, LocalExecutor) and local.retries == 3 and local.in_process_threads is None
    with pytest.raises(TypeError, match="unknown executor options"):
        make_executor("local", tmp_path, colour="red")
    with pytest.raises(ValueError, match="expected one of local, dask, slurm"):
        make_executor("ray", tmp_path)


def test_a_script_without_a_main_guard_gets_a_named_error_and_no_failed_runs(tmp_path):
    """Spawned workers import the calling script again: without `if __name__ == "__main__":` they exit
    while starting. That is the script's fault, not the runs': nothing is recorded as failed."""
    root = tmp_path / "runs"
    script = tmp_path / "sweep_script.py"
    script.write_text(
        "from attnlab.run import open_store, run_many\n"
        "from attnlab.sweep.grid import expand, parse_sweep\n"
        "from attnlab.sweep.runner import run_sweep\n"
        f"raw = {tiny_sweep(m_values=(4,), seeds=2)!r}\n"
        f"run_sweep(expand(parse_sweep(raw)), open_store({str(root)!r}), run_many, workers=2, threads=1, "
        "progress=False)\n")
    done = subprocess.run([sys.executable, str(script)], env=subprocess_env(), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert "WorkerStartError: sweep worker processes exit before taking a task" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert not run_dirs(root) and not list(root.glob(".failed/*.json"))
