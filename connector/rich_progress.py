"""Live progress bars on a terminal, drawn with rich.

Apart from `connector.progress` because rich takes about 40 ms to import: a scheduled run, a
`--json` run or a test draws no bar, and imports none of it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

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

from connector.display import printable
from connector.progress import ProgressTask


class _RowsPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {task.fields['counts']}/s")


class _CountColumn(ProgressColumn):
    """Rows (or versions), then the pages (or batches) counted so far: none for work that counts none (a
    file's check)."""

    def render(self, task: Task) -> Text:
        pages = task.fields["pages"]
        counts = task.fields["counts"]
        return Text(f"{counts} · {pages:,} {task.fields['unit']} ·" if pages else f"{counts} ·")


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
            TextColumn("{task.description}", markup=False),  # a name's `[/]` is text, not markup
            BarColumn(),
            MofNCompleteColumn(),
            _CountColumn(),
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

    def task(
        self, description: str, total_rows: int | None = None, unit: str = "pages", counts: str = "rows"
    ) -> ProgressTask:
        # A description names an object or a file: a control character in it must not drive the terminal.
        task_id = self._progress.add_task(
            printable(description), total=total_rows, pages=0, unit=unit, counts=counts
        )
        return _RichTask(self._progress, task_id)
