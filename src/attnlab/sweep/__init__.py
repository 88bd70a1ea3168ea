"""Sweeps: many runs from one grid file, resumable, on a laptop or a cluster.

The sweep sits above the store and below `attnlab.run`: it is handed the store and the work
function that computes runs, and never imports the code that trains them.

Modules (one concept each):

- ``grid``: ``load_sweep(path) -> SweepSpec``, ``parse_sweep(mapping)``, ``expand(spec) ->
  list[RunConfig]`` (validated before anything runs; errors name the field).
- ``runner``: ``triage(configs, store, retry_failed=False) -> Triage(run, reuse, failed)``,
  ``run_sweep(configs, store, work, executor="local", workers=None, retry_failed=False,
  progress=True, **executor_options) -> DataFrame`` (``store.table(configs)``),
  ``write_table(table, path)`` (Parquet + CSV), ``group_by_seed(configs)``.
- ``executors``: ``make_executor(name, root, workers=None, **options)``; ``LocalExecutor`` (process
  pool, one worker per core by default), ``DaskExecutor`` (dask.distributed), ``SlurmExecutor``
  (submitit job arrays; ``cluster="local"``/``"debug"`` without SLURM).
- ``tasks``: what a worker runs: ``run_group(configs, store, work, threads)`` ->
  ``run_batch(configs, store, work)``, which hands runs that differ only by seed to one call of
  ``work(configs, root)`` (``attnlab.run.run_many``) and falls back to one run at a time
  (recording only the run that raises) when the batched call fails.
- ``locks``: ``RunLocks(root, run_id)``, lock files so that concurrent drivers share the work.
- ``progress``: the rich display (done / failed / remaining, ETA).

Example::

    from attnlab.run import open_store, run_many
    from attnlab.sweep.grid import load_sweep, expand
    from attnlab.sweep.runner import run_sweep, triage, write_table
    configs, store = expand(load_sweep("configs/sweep-quick.yaml")), open_store("runs")
    print(len(triage(configs, store).run), "to run")
    write_table(run_sweep(configs, store, run_many, workers=2), "runs/quick.parquet")

The command line is ``attnlab sweep FILE.yaml [--dry-run] [--retry-failed] [--executor local|dask|
slurm] ...``.
"""
