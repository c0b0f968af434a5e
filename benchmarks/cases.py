"""One measured case, run in its own fresh process: `python -m benchmarks.cases SPEC_JSON`.

A fresh process per case makes the peak RSS that case's own, and the CPU
seconds that process's user + system time. Wall and CPU time cover the work
only, not the interpreter start and imports; the peak RSS includes them, so the
RSS before the work is reported too.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# subject -> (module, function); modules are imported only in the case's own process.
SUBJECTS: dict[str, tuple[str, str]] = {
    "btsync.sync": ("benchmarks.subjects.btsync", "sync"),
    "btsync.sync_iceberg": ("benchmarks.subjects.btsync_iceberg", "sync"),
    "btsync.push": ("benchmarks.subjects.btsync", "push"),
    "floor.fetch": ("benchmarks.subjects.floor", "fetch"),
    "floor.push": ("benchmarks.subjects.floor", "push"),
    "dlt.fetch": ("benchmarks.subjects.dlt_rest_api", "fetch"),
    "sdk.fetch": ("benchmarks.subjects.braintrust_sdk", "fetch"),
    "sdk.push": ("benchmarks.subjects.braintrust_sdk", "push"),
}
# The package each peer needs, so a missing one is reported as skipped rather than failed.
REQUIRES: dict[str, str] = {
    "dlt.fetch": "dlt",
    "sdk.fetch": "braintrust",
    "sdk.push": "braintrust",
    "btsync.sync_iceberg": "pyiceberg",
}


@dataclass(frozen=True)
class CaseSpec:
    """What one case does, against which emulator object.

    Args:
        case: the case's label, e.g. "full sync".
        subject: a key of `SUBJECTS`.
        api_url: the emulator's base URL.
        api_key: the emulator's API key.
        object_type: "project_logs", "experiment" or "dataset".
        object_id: the project id (logs), experiment id or dataset id.
        project_name: the project's name.
        object_name: the experiment's or dataset's name (the project's for logs).
        workdir: a directory the case may write to (kept between a full and an incremental sync).
        result_file: where the case writes its `Measurement` as JSON.
        push_file: the JSON Lines file a push case sends.
    """

    case: str
    subject: str
    api_url: str
    api_key: str
    object_type: str
    object_id: str
    project_name: str
    object_name: str
    workdir: str
    result_file: str
    push_file: str | None = None


@dataclass(frozen=True)
class Counts:
    """What a subject reports about its own work (None where it cannot know)."""

    rows_stored: int | None = None
    rows_fetched: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Measurement:
    """One case's cost and outcome, as measured inside its process."""

    wall_s: float
    cpu_s: float
    rss_peak_mb: float
    rss_before_mb: float
    rows_stored: int | None
    rows_fetched: int | None
    detail: str | None


def measure(work: Callable[[], Counts]) -> Measurement:
    """Run `work` and measure its wall time, CPU time and this process's peak RSS."""
    rss_before = peak_rss_mb()
    before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    counts = work()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
        for start, end in ((before, after), (children_before, children_after))
    )
    return Measurement(
        wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        rss_peak_mb=peak_rss_mb(),
        rss_before_mb=rss_before,
        rows_stored=counts.rows_stored,
        rows_fetched=counts.rows_fetched,
        detail=counts.detail,
    )


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's `ru_maxrss` survives `exec`: a child starts with its parent's RSS at
    the fork as its peak. `VmHWM` belongs to the process's own address space.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_case(spec: CaseSpec) -> Measurement:
    """Import the case's subject and measure it (call this in a fresh process)."""
    module_name, function_name = SUBJECTS[spec.subject]
    subject: Callable[[CaseSpec], Counts] = getattr(importlib.import_module(module_name), function_name)
    measurement = measure(lambda: subject(spec))
    Path(spec.result_file).write_text(json.dumps(asdict(measurement)))
    return measurement


def main(argv: list[str]) -> None:
    run_case(CaseSpec(**json.loads(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
