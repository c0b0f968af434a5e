"""The emulator in its own process, seeded with the benchmark data.

The measured process must not share a GIL (or one of the two cores' worth of
Python) with the server, so the emulator runs as
`python -m benchmarks.emulator_process ROWS API_KEY`: it seeds a project's logs
and an experiment with the same generated rows, prints one JSON line
describing them, and serves until its stdin closes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from connector.emulator import Emulator
from connector.emulator.generate import TraceFactory, log_batches

PROJECT = "bench"
EXPERIMENT = "bench-experiment"
# The generator's realistic shape: traces of 1-20 spans, ~1.2 kB rows, 5% of rows updated once.
TRACE_SPANS = (1, 20)
UPDATE_FRACTION = 0.05
PAYLOAD_BYTES = 1200
_READY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Seeded:
    """What the emulator serves.

    Args:
        url: base URL.
        project_id: the project whose logs are the main table.
        experiment_id: the experiment holding the same generated rows (for the SDK peer).
        logs_rows: live rows in the project logs.
        logs_versions: versions a full fetch of the logs pages over.
        experiment_rows: live rows in the experiment.
        experiment_versions: versions a full fetch of the experiment pages over.
    """

    url: str
    project_id: str
    experiment_id: str
    logs_rows: int
    logs_versions: int
    experiment_rows: int
    experiment_versions: int


def seed(emulator: Emulator, rows: int) -> Seeded:
    """Write `rows` generated log rows into a project and, through inserts, into an experiment."""
    store = emulator.store
    project = store.create_project(PROJECT)
    experiment = store.create_experiment(project["id"], EXPERIMENT)
    store.generate_logs(
        project["id"],
        rows,
        trace_spans=TRACE_SPANS,
        update_fraction=UPDATE_FRACTION,
        payload_bytes=PAYLOAD_BYTES,
    )
    factory = TraceFactory(random.Random(1), PAYLOAD_BYTES)
    for batch in log_batches(factory, rows, trace_spans=TRACE_SPANS, update_fraction=UPDATE_FRACTION):
        store.insert("experiment", experiment["id"], batch)
    return Seeded(
        url=emulator.url,
        project_id=project["id"],
        experiment_id=experiment["id"],
        logs_rows=store.live_count("project_logs", project["id"]),
        logs_versions=store.version_count("project_logs", project["id"]),
        experiment_rows=store.live_count("experiment", experiment["id"]),
        experiment_versions=store.version_count("experiment", experiment["id"]),
    )


def main(argv: list[str]) -> None:
    rows, api_key = int(argv[0]), argv[1]
    emulator = Emulator(seed="empty", api_key=api_key)
    emulator.start()
    seeded = seed(emulator, rows)
    print(json.dumps(asdict(seeded)), flush=True)
    sys.stdin.read()
    emulator.stop()


class EmulatorProcess:
    """A seeded emulator subprocess (a context manager), and its admin endpoints.

    Args:
        rows: generated rows per object.
        api_key: the key clients must send.
        log: where the process's stderr goes.
    """

    def __init__(self, rows: int, api_key: str, log: Path) -> None:
        self.api_key = api_key
        self._log = log.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.emulator_process", str(rows), api_key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.seeded = self._wait_ready()
        self._http = httpx.Client(
            base_url=self.seeded.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        )

    def _wait_ready(self) -> Seeded:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=_READY_TIMEOUT_S)
            raise RuntimeError(
                f"the emulator process exited ({code}) before it was ready; see {self._log.name}"
            )
        return Seeded(**json.loads(line))

    def reset_stats(self) -> None:
        self._http.post("/_emulator/stats/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        """The emulator's counters since the last reset: `requests` and `rows_served` per object id."""
        response = self._http.get("/_emulator/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def drop_dataset(self, name: str) -> None:
        """Delete the seeded project's dataset `name`, if a case made it, and with it every row pushed.

        Each push adds its rows to the emulator's memory, and each later request then costs the
        emulator more (three pushes of 200,000 rows in a row: 7.9, 9.6 and 10.7 s of its CPU): without
        this, whichever push ran first would win.
        """
        listed = self._http.get(
            "/v1/dataset", params={"project_id": self.seeded.project_id, "dataset_name": name}
        )
        listed.raise_for_status()
        for dataset in listed.json()["objects"]:
            self._http.delete(f"/v1/dataset/{dataset['id']}").raise_for_status()

    def close(self) -> None:
        self._http.close()
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    main(sys.argv[1:])
