"""The run store, the bottom of the stack above config: run identity, the one atomic writer, the
completion marker, the table reader and the failure records. It knows nothing of models or trainers.

- ``identity``: ``run_id(config, results_version)``, the hash that names a run; ``seedless_key(config)``,
  the config without its seed (runs that differ only by seed train together).
- ``atomic``: ``atomic_write(path, write)``, ``atomic_write_text(path, text)``.
- ``runs``: ``RunStore(root, results_version)``: ``write``, ``is_complete``, ``summary``, ``curves``,
  ``table(configs=None)``; ``check_run_dir(path)``, ``read_summary(run_dir)``, ``thin_copy`` (a run
  directory with its curves thinned, to ship).
- ``failures``: ``FailureLog``, ROOT/.failed/<run_id>.json (``RunStore.failures``).
"""

from attnlab.store.atomic import atomic_write, atomic_write_text
from attnlab.store.failures import FailureLog
from attnlab.store.identity import run_id, seedless_key
from attnlab.store.runs import (COMPLETE, CONFIG, CURVES, DIVERGED, DONE, FAILED, PENDING, SUMMARY, RunStore,
                                check_run_dir, read_summary, thin_copy)

__all__ = ["COMPLETE", "CONFIG", "CURVES", "DIVERGED", "DONE", "FAILED", "PENDING", "SUMMARY", "FailureLog",
           "RunStore", "atomic_write", "atomic_write_text", "check_run_dir", "read_summary", "run_id", "seedless_key",
           "thin_copy"]
