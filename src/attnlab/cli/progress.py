"""A progress bar with the current loss, shown while training (rich)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextlib.contextmanager
def training_progress(steps: int, enabled: bool = True,
                      updates: int = 200) -> Iterator[Callable[[int, float], None] | None]:
    """Yield a callback `(step, loss)` that advances a bar about `updates` times in all."""
    if not enabled:
        yield None
        return
    every = max(1, steps // updates)
    columns = (TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("train", total=steps, loss="-")

        def update(step: int, loss: float) -> None:
            if step % every == 0 or step == steps - 1:
                shown = f"{loss:.4g}" if loss == loss else bar.tasks[task].fields["loss"]
                bar.update(task, completed=step + 1, loss=shown)

        yield update
