"""Progress of long `connector` work, reported to the Dagster run log."""

from typing import Protocol

from connector.display import counted
from connector.progress import ProgressTask


class _Log(Protocol):
    def info(self, msg: str) -> object: ...


class _LogTask:
    def __init__(self, log: _Log, description: str, unit: str, counts: str) -> None:
        self._log = log
        self._description = description
        self._unit = unit
        self._counts = counts
        self._rows = 0
        self._pages = 0

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        self._rows += rows
        self._pages += pages

    def close(self) -> None:
        # Work that counts no pages (a file's check) says so by leaving the count out.
        pages = f", {counted(self._pages, self._unit)}" if self._pages else ""
        self._log.info(f"{self._description}: {counted(self._rows, self._counts)}{pages}")


class LogProgress:
    """A `connector` progress reporter that logs one line per finished task (no bars in a run log).

    Args:
        log: where lines go, typically `context.log`.
    """

    def __init__(self, log: _Log) -> None:
        self._log = log

    def task(
        self, description: str, total_rows: int | None = None, unit: str = "pages", counts: str = "rows"
    ) -> ProgressTask:
        """Start a task; its totals are logged when it closes."""
        return _LogTask(self._log, description, unit, counts)
