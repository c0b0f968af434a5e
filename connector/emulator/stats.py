"""Counters of what the emulator served, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Stats:
    """Request and row counters; thread-safe.

    Attributes:
        requests: requests per (method, route name), e.g. ("POST", "project_logs.fetch").
        rows_served: fetched rows per object id.
        rows_inserted: inserted events per object id.
        most_in_flight: per route name, the most requests it was serving at the same time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.rows_served: Counter[str] = Counter()
        self.rows_inserted: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()

    @contextmanager
    def serving(self, route: str) -> Iterator[None]:
        """Count a request as in flight on `route` while the block runs."""
        with self._lock:
            self._in_flight[route] += 1
            self.most_in_flight[route] = max(self.most_in_flight[route], self._in_flight[route])
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[route] -= 1

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
            self.most_in_flight.clear()

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data (`requests` keys are "METHOD route")."""
        with self._lock:
            return {
                "requests": {f"{method} {route}": n for (method, route), n in sorted(self.requests.items())},
                "rows_served": dict(self.rows_served),
                "rows_inserted": dict(self.rows_inserted),
                "most_in_flight": dict(self.most_in_flight),
            }
