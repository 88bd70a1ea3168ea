"""A progress display for sweeps (rich): runs done / failed / remaining and the ETA."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from attnlab.store import DONE, FAILED
from attnlab.sweep.tasks import LOCKED, Outcome


@contextlib.contextmanager
def sweep_progress(total: int, name: str = "sweep",
                   enabled: bool = True) -> Iterator[Callable[[list[Outcome]], None]]:
    """Yield a callback that takes each finished task's outcomes and advances the display."""
    counts = {DONE: 0, FAILED: 0}

    def count(outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.status != LOCKED:   # counted when the driver has waited for it
                counts[FAILED if outcome.status == FAILED else DONE] += 1

    if not enabled:
        yield count
        return
    columns = (TextColumn(f"[bold]{name}[/]"), BarColumn(),
               TextColumn("done {task.fields[done]}  failed {task.fields[failed]}  "
                          "remaining {task.fields[remaining]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(name, total=total, done=0, failed=0, remaining=total)

        def update(outcomes: list[Outcome]) -> None:
            count(outcomes)
            finished = counts[DONE] + counts[FAILED]
            bar.update(task, completed=finished, done=counts[DONE], failed=counts[FAILED],
                       remaining=total - finished)

        yield update
