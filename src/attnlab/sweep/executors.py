"""Executors: where the tasks of a sweep run. Each task is a list of configs (see tasks.run_group).

- "local": worker processes on this machine (spawn context), each fed one task at a time through
  its own pipe; workers=1 runs the tasks in the driver process. When a worker dies, only the task
  it was running is charged: it is resubmitted to a fresh worker at most `retries` times; the
  other workers go on undisturbed. A worker that dies before it has started (it never says so)
  charges no task; more than `retries` of those stop the sweep with WorkerStartError.
- "dask": a dask.distributed cluster (`scheduler="tcp://HOST:PORT"`); a task whose worker dies is
  rescheduled by dask (up to the scheduler's `allowed-failures`), a task that raises is retried
  `retries` times. Start workers with `--nthreads 1` (each run sets torch to one thread).
- "slurm": submitit job arrays (partition, time, memory, array parallelism); `cluster="local"` or
  `"debug"` runs the same path without a cluster. A job that dies (killed, timed out, preempted) is
  resubmitted at most `retries` times.

Every executor yields each task's outcomes as the task finishes; the store is the only result, so
all executors produce the same table. Runs that raise are recorded by the worker (tasks.run_batch);
tasks the engine gives up on are recorded by the driver (tasks.engine_failure).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import subprocess
import threading
import time
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Iterator, Protocol

from attnlab.config import RunConfig, load_plugins, loaded_plugins
from attnlab.store import RunStore
from attnlab.sweep.tasks import Outcome, Work, engine_failure, run_batch, run_group, set_threads, torch_threads

Task = list[RunConfig]
READY = ("ready", None)   # a local worker's first message: started, taking tasks


class WorkerStartError(RuntimeError):
    """Local worker processes exit before they can take a task (nothing was charged to any run)."""


class Executor(Protocol):
    """Runs tasks and yields each task's outcomes as it finishes (in any order)."""

    parallelism: int  # how many tasks can run at once (used to split seed groups)

    def map(self, tasks: list[Task], store: RunStore, work: Work) -> Iterator[list[Outcome]]: ...

    def close(self) -> None: ...


def available_cpus() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------ local
def _init_local_worker(parent_pid: int, threads: int, plugins: tuple[str, ...]) -> None:
    """Pool worker start-up: few threads, the driver's plugins, and exit if the driver dies (no
    orphans burning CPU)."""
    set_threads(threads)
    load_plugins(list(plugins))

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="attnlab-orphan-watch").start()


class LocalExecutor:
    """`workers` worker processes (default: one per core) with `threads` torch threads
    each (default: cores // workers); `workers=1` runs tasks in the calling process."""

    def __init__(self, workers: int | None = None, threads: int | None = None, retries: int = 2):
        if workers is not None and workers < 1:
            raise ValueError(f"workers = {workers}: expected at least 1")
        if threads is not None and threads < 1:
            raise ValueError(f"threads = {threads}: expected at least 1")
        self.workers = workers or available_cpus()
        self.in_process_threads = threads  # None: the driver's own setting
        self.threads = threads or max(1, available_cpus() // self.workers)
        self.retries = retries
        self.parallelism = self.workers

    def map(self, tasks: list[Task], store: RunStore, work: Work) -> Iterator[list[Outcome]]:
        if self.workers == 1:
            for task in tasks:
                with torch_threads(self.in_process_threads):
                    outcomes = run_batch(task, store, work)
                yield outcomes
            return
        queue, deaths, start_failures = list(range(len(tasks))), [0] * len(tasks), 0
        workers: list[_Worker] = []
        context = get_context("spawn")
        try:
            while queue or any(w.task is not None for w in workers):
                workers = [w for w in workers if w.process.is_alive() or w.task is not None]
                idle = sum(w.task is None for w in workers)
                for _ in range(min(len(queue) - idle, self.workers - len(workers))):   # fresh workers
                    workers.append(_Worker(context, self.threads, loaded_plugins()))
                for worker in workers:
                    if worker.task is None and queue:
                        worker.start(queue.pop(0), tasks, store, work)
                busy = [w for w in workers if w.task is not None]
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        i, reply = worker.task, worker.receive()
                        if reply == READY:
                            continue
                        if reply is None and not worker.started:   # died starting: not the task's fault
                            start_failures += 1
                            if start_failures > self.retries:
                                raise WorkerStartError(_start_failure(worker.process.exitcode, start_failures))
                            queue.insert(0, i)
                            continue
                        if reply is not None:
                            yield (reply[1] if reply[0] == "ok"
                                   else engine_failure(tasks[i], store, RuntimeError(reply[1])))
                            continue
                        # the worker died running task i: charge i only, the others never ran there
                        deaths[i] += 1
                        code = worker.process.exitcode
                        if deaths[i] > self.retries:
                            yield engine_failure(tasks[i], store, RuntimeError(
                                f"the worker running this task died (exit code {code}; tried {deaths[i]} "
                                f"times, retries = {self.retries})"))
                        else:
                            queue.insert(0, i)
        finally:
            for worker in workers:
                worker.stop()

    def close(self) -> None:
        pass


def _start_failure(code: int | None, times: int) -> str:
    return (f"sweep worker processes exit before taking a task (exit code {code}, {times} times; no run was "
            "charged, finished runs stay in the store). The usual cause: a script that calls run_sweep or "
            "reproduce with workers > 1 must make the call under `if __name__ == \"__main__\":`, since the workers "
            "are spawned and import the script again. Otherwise the workers' error output above names the cause.")


class _Worker:
    """One spawned worker process and the pipe it takes tasks from; `task` is the index it runs."""

    def __init__(self, context: Any, threads: int, plugins: tuple[str, ...] = ()):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_loop, args=(child, os.getpid(), threads, plugins),
                                       daemon=True, name="attnlab-sweep-worker")
        self.process.start()
        child.close()
        self.task: int | None = None
        self.started = False   # READY received

    def start(self, i: int, tasks: list[Task], store: RunStore, work: Work) -> None:
        self.task = i
        try:
            self.conn.send((tasks[i], store, work))
        except OSError:   # died before taking it: receive() reports the death
            pass

    def receive(self) -> tuple[str, Any] | None:
        """READY once the worker has started (its task goes on), then the reply to the running task,
        or None when the worker died."""
        try:
            reply = self.conn.recv()
        except (EOFError, OSError):
            self.process.join()
            reply = None
        if reply == READY:
            self.started = True
            return reply
        self.task = None
        return reply

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(timeout=1)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.conn.close()


def _worker_loop(conn: Any, parent_pid: int, threads: int, plugins: tuple[str, ...] = ()) -> None:
    """Worker process: run the tasks that come through `conn` until it sends None."""
    _init_local_worker(parent_pid, threads, plugins)
    conn.send(READY)
    while (message := conn.recv()) is not None:
        task, store, work = message
        try:
            conn.send(("ok", run_group(task, store, work, threads)))
        except Exception as error:   # not a run's failure (run_batch records those): a task-level error
            conn.send(("error", f"{type(error).__name__}: {error}".splitlines()[0]))



# ------------------------------------------------------------------------------------------- dask
class DaskExecutor:
    """Tasks on a dask.distributed cluster reached at `scheduler` (an address or a Client).

    Workers write runs straight into `root`, so `root` must be the same path on every worker (a
    shared filesystem); the driver only reads the store to build the table.
    """

    def __init__(self, scheduler: Any = None, retries: int = 2, threads: int = 1):
        from distributed import Client

        if scheduler is None:
            raise ValueError("the dask executor needs a scheduler address, e.g. tcp://127.0.0.1:8786")
        self._own_client = not isinstance(scheduler, Client)
        self.client = Client(scheduler) if self._own_client else scheduler
        self.retries, self.threads = retries, threads
        self.parallelism = max(1, sum(self.client.nthreads().values()))

    def map(self, tasks: list[Task], store: RunStore, work: Work) -> Iterator[list[Outcome]]:
        from distributed import as_completed as dask_completed

        plugins = loaded_plugins()
        futures = {self.client.submit(run_group, task, store, work, self.threads, plugins, retries=self.retries,
                                      pure=False): i for i, task in enumerate(tasks)}
        try:
            for future in dask_completed(list(futures)):
                i = futures[future]
                try:
                    yield future.result()
                except Exception as error:  # KilledWorker after too many deaths, lost data, ...
                    yield engine_failure(tasks[i], store, error)
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        if self._own_client:
            self.client.close()


# ------------------------------------------------------------------------------------------ slurm
class SlurmExecutor:
    """Tasks as SLURM job arrays through submitit (`cluster=None` detects SLURM; "local"/"debug" for
    tests). Job logs go to `folder`."""

    def __init__(self, folder: str | Path, cluster: str | None = None, partition: str | None = None,
                 time_min: int = 60, mem_gb: float = 4.0, array_parallelism: int = 256,
                 cpus_per_task: int = 1, retries: int = 2, poll_s: float | None = None):
        import submitit

        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        if self.executor.cluster == "slurm":
            _watch_queue_without_accounting()
        params: dict[str, Any] = dict(timeout_min=time_min, mem_gb=mem_gb, cpus_per_task=cpus_per_task,
                                      name="attnlab-sweep", slurm_array_parallelism=array_parallelism)
        if partition is not None:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)
        self.threads, self.retries = cpus_per_task, retries
        self.poll_s = poll_s if poll_s is not None else (0.2 if self.executor.cluster != "slurm" else 5.0)
        self.parallelism = array_parallelism

    def map(self, tasks: list[Task], store: RunStore, work: Work) -> Iterator[list[Outcome]]:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        n, plugins = len(tasks), loaded_plugins()
        jobs = self.executor.map_array(run_group, tasks, [store] * n, [work] * n, [self.threads] * n, [plugins] * n)
        active = {job: (i, 0) for i, job in enumerate(jobs)}
        try:
            while active:
                finished = [job for job in active if job.done()]
                if not finished:
                    time.sleep(self.poll_s)
                for job in finished:
                    i, attempt = active.pop(job)
                    try:
                        yield job.result()
                    except FailedJobError as error:  # the task itself raised
                        yield engine_failure(tasks[i], store, error)
                    except UncompletedJobError as error:  # killed, timed out, preempted
                        if attempt >= self.retries:
                            yield engine_failure(tasks[i], store, error)
                        else:
                            retry = self.executor.submit(run_group, tasks[i], store, work, self.threads, plugins)
                            active[retry] = (i, attempt + 1)
        finally:
            for job in active:
                job.cancel(check=False)

    def close(self) -> None:
        pass


@functools.cache
def _watch_queue_without_accounting() -> None:
    """Make submitit's SLURM jobs read their states from sacct where accounting is on, and from
    squeue, quietly, where it is off (sacct then fails at every poll with a warning, and a cancelled
    job, which leaves no result, would never be seen to end). submitit builds the jobs of an array
    as SlurmJob itself, so its shared watcher is replaced."""
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    class QueueWatcher(SlurmInfoWatcher):
        accounting: bool | None = None   # whether sacct answers (asked once)

        def update(self) -> None:
            if QueueWatcher.accounting is None:
                QueueWatcher.accounting = subprocess.run(["sacct", "--noheader", "-j", "1"], capture_output=True,
                                                         text=True).returncode == 0
            if QueueWatcher.accounting:
                super().update()
                return
            unfinished = self._registered - self._finished
            if not unfinished:
                return
            self._num_calls += 1
            listing = subprocess.run(["squeue", "--noheader", "--states=all", "--array", "--me",
                                      "--format=%i|%T|%N"], capture_output=True, text=True)
            if listing.returncode == 0:   # a job no longer listed has ended (and been purged)
                info = self.read_info("JobID|State|NodeList\n" + listing.stdout)
                for job_id in unfinished:
                    info.setdefault(job_id, {"JobID": job_id, "State": "COMPLETED", "NodeList": ""})
                self._info_dict.update(info)
            self._last_status_check = time.time()
            for job_id in unfinished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

    SlurmJob.watcher = QueueWatcher(delay_s=600)


# ---------------------------------------------------------------------------------------- factory
EXECUTOR_OPTIONS = {"local": ("threads", "retries"), "dask": ("scheduler", "retries", "threads"),
                    "slurm": ("cluster", "partition", "time_min", "mem_gb", "array_parallelism", "cpus_per_task",
                              "retries", "folder", "poll_s")}
EXECUTORS = tuple(EXECUTOR_OPTIONS)


def make_executor(name: str, root: Path, workers: int | None = None, **options: Any) -> Executor:
    """The executor called `name` ("local", "dask" or "slurm"), from the options of every executor
    as a caller has them (the command line's): each executor takes its own, an option that is None
    keeps its default, and the other executors' options are ignored.

    local: workers, threads, retries. dask: scheduler (address or Client), retries, threads.
    slurm: cluster, partition, time_min, mem_gb, array_parallelism (default: workers), cpus_per_task,
    retries, folder (default ROOT/.submitit), poll_s.
    """
    if name not in EXECUTOR_OPTIONS:
        raise ValueError(f"executor = {name!r}: expected one of {', '.join(EXECUTORS)}")
    unknown = sorted(set(options).difference(*EXECUTOR_OPTIONS.values()))
    if unknown:
        known = sorted(set().union(*EXECUTOR_OPTIONS.values()))
        raise TypeError(f"unknown executor options {unknown}; the executors take {', '.join(known)}")
    own = {key: value for key, value in options.items() if key in EXECUTOR_OPTIONS[name] and value is not None}
    if name == "local":
        return LocalExecutor(workers=workers, **own)
    if name == "dask":
        return DaskExecutor(**own)
    own.setdefault("folder", Path(root) / ".submitit")
    if workers is not None:
        own.setdefault("array_parallelism", workers)
    return SlurmExecutor(**own)


def split_tasks(groups: list[Task], parallelism: int) -> list[Task]:
    """Split seed groups so that at least `parallelism` tasks exist when there are enough runs.

    Batching seeds saves time only if the other workers are not left idle: groups are cut into
    pieces of at most ceil(runs / parallelism) configs.
    """
    total = sum(len(group) for group in groups)
    if total == 0:
        return []
    size = max(1, math.ceil(total / max(1, parallelism)))
    return [group[start:start + size] for group in groups for start in range(0, len(group), size)]
