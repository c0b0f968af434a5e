"""Counters of what the emulator served, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Request and row counters; thread-safe.

    Attributes:
        requests: requests per (method, route name), e.g. ("POST", "project_logs.fetch").
        rows_served: fetched rows per object id.
        rows_inserted: inserted events per object id.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.rows_served: Counter[str] = Counter()
        self.rows_inserted: Counter[str] = Counter()

    def count_request(self, method: str, route: str) -> None:
        with self._lock:
            self.requests[(method, route)] += 1

    def count_served(self, object_id: str, rows: int) -> None:
        with self._lock:
            self.rows_served[object_id] += rows

    def count_inserted(self, object_id: str, rows: int) -> None:
        with self._lock:
            self.rows_inserted[object_id] += rows

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.rows_served.clear()
            self.rows_inserted.clear()

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data (`requests` keys are "METHOD route")."""
        with self._lock:
            return {
                "requests": {f"{method} {route}": n for (method, route), n in sorted(self.requests.items())},
                "rows_served": dict(self.rows_served),
                "rows_inserted": dict(self.rows_inserted),
            }
