"""Progress reporting: a rich bar on a terminal, nothing otherwise.

Long work (syncing an object, pushing a file) reports rows and pages through a
`ProgressTask`; the caller picks `RichProgress` for a TTY or `NullProgress`
for schedulers, tests and `--json` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Protocol, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class ProgressTask(Protocol):
    """One unit of long work shown to the user."""

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        """Record `rows` more rows (and `pages` more pages or batches) done."""

    def close(self) -> None:
        """Mark the work finished."""


class ProgressReporter(Protocol):
    """Hands out a `ProgressTask` per unit of work."""

    def task(self, description: str, total_rows: int | None = None) -> ProgressTask:
        """Start showing `description`; `total_rows` makes a bar, None a counter."""
        ...


class _NullTask:
    def advance(self, rows: int = 0, pages: int = 0) -> None:
        return None

    def close(self) -> None:
        return None


class NullProgress:
    """Shows nothing."""

    def task(self, description: str, total_rows: int | None = None) -> ProgressTask:
        return _NullTask()


class _RowsPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s")


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._task_id = task_id
        self._pages = 0

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        self._pages += pages
        self._progress.update(self._task_id, advance=rows, pages=self._pages)

    def close(self) -> None:
        self._progress.stop_task(self._task_id)


class RichProgress:
    """Live bars on stderr with rows, pages and rows/s; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows · {task.fields[pages]} pages ·"),
            _RowsPerSecondColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def task(self, description: str, total_rows: int | None = None) -> ProgressTask:
        task_id = self._progress.add_task(description, total=total_rows, pages=0)
        return _RichTask(self._progress, task_id)


@contextmanager
def terminal_progress(*, quiet: bool = False) -> Iterator[ProgressReporter]:
    """Live bars when stderr is a terminal (and not `quiet`), otherwise nothing.

    Args:
        quiet: show nothing even on a terminal (e.g. for `--json` output).
    """
    if quiet or not sys.stderr.isatty():
        yield NullProgress()
        return
    with RichProgress() as progress:
        yield progress
