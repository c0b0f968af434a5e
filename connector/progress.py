"""Progress reporting: a rich bar on a terminal, nothing otherwise.

Long work (syncing an object, pushing a file) reports rows and pages through a
`ProgressTask`; the caller picks `RichProgress` (in `connector.rich_progress`) for a TTY or
`NullProgress` for schedulers, tests and `--json` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressTask(Protocol):
    """One unit of long work shown to the user."""

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        """Record `rows` more rows or versions (and `pages` more pages or batches) done."""

    def close(self) -> None:
        """Mark the work finished."""


class ProgressReporter(Protocol):
    """Hands out a `ProgressTask` per unit of work."""

    def task(
        self, description: str, total_rows: int | None = None, unit: str = "pages", counts: str = "rows"
    ) -> ProgressTask:
        """Start showing `description`; `total_rows` makes a bar, None a counter; `unit` names what
        `pages` counts (a push's batches), `counts` what `rows` counts (a sync's versions of rows)."""
        ...


class _NullTask:
    def advance(self, rows: int = 0, pages: int = 0) -> None:
        return None

    def close(self) -> None:
        return None


class NullProgress:
    """Shows nothing."""

    def task(
        self, description: str, total_rows: int | None = None, unit: str = "pages", counts: str = "rows"
    ) -> ProgressTask:
        return _NullTask()


@contextmanager
def terminal_progress(*, quiet: bool = False) -> Iterator[ProgressReporter]:
    """Live bars when stderr is a terminal (and not `quiet`), otherwise nothing.

    Args:
        quiet: show nothing even on a terminal (e.g. for `--json` output).
    """
    if quiet or not sys.stderr.isatty():
        yield NullProgress()
        return
    from connector.rich_progress import RichProgress

    with RichProgress() as progress:
        yield progress
