"""Sweeps: many runs from one grid file, resumable, on a laptop or a cluster.

Modules (one concept each):

- ``store``: ``RunStore(root)``, one directory per finished run named ``run_id(config)`` (the hash
  of the resolved config), written atomically.
- ``grid``: ``load_sweep(path) -> SweepSpec``, ``parse_sweep(mapping)``, ``expand(spec) ->
  list[RunConfig]`` (validated before anything runs; errors name the field).
- ``runner``: ``plan(configs, root, retry_failed=False) -> Plan(run, reuse, failed)``,
  ``run_sweep(configs, root, executor="local", workers=None, retry_failed=False, progress=True,
  **executor_options) -> DataFrame``, ``results_table(configs, root)``, ``write_table(table, path)``
  (Parquet + CSV), ``group_by_seed(configs)``.
- ``executors``: ``make_executor(name, root, workers=None, **options)``; ``LocalExecutor`` (process
  pool, one worker per core by default), ``DaskExecutor`` (dask.distributed), ``SlurmExecutor``
  (submitit job arrays; ``cluster="local"``/``"debug"`` without SLURM).
- ``tasks``: what a worker runs: ``run_group(configs, root, threads)`` -> ``run_batch(configs, root)``,
  which hands runs that differ only by seed to the seed-batching hook
  ``attnlab.run.run_many(configs: list[RunConfig], root) -> list[Path]`` and falls back to one run
  at a time (recording only the run that raises) when the batched call fails.
- ``failures``: ``FailureLog(root)``, ROOT/.failed/<run_id>.json with error, traceback and config.
- ``progress``: the rich display (done / failed / remaining, ETA).

Example::

    from attnlab.sweep.grid import load_sweep, expand
    from attnlab.sweep.runner import plan, run_sweep, write_table
    configs = expand(load_sweep("configs/sweep-quick.yaml"))
    print(len(plan(configs, "runs").run), "to run")
    write_table(run_sweep(configs, "runs", workers=2), "runs/quick.parquet")

The command line is ``attnlab sweep FILE.yaml [--dry-run] [--retry-failed] [--executor local|dask|
slurm] ...``.
"""
