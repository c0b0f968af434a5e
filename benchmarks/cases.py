"""The peers as commands: `python -m benchmarks.cases SUBJECT SPEC_JSON` runs one and prints its counts.

bt-sync is measured as its own command line (`bt-sync sync`, `bt-sync push`);
the floor, dlt and the SDK are Python functions, run here in a fresh process
that `benchmarks.measure` measures the same way. The last line of stdout is
the subject's `Counts` as JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

from connector.api.lazy_httpx_cli import defer_httpx_cli

# subject -> (module, function); modules are imported only in the case's own process.
SUBJECTS: dict[str, tuple[str, str]] = {
    "floor.fetch": ("benchmarks.subjects.floor", "fetch"),
    "floor.push": ("benchmarks.subjects.floor", "push"),
    "dlt.fetch": ("benchmarks.subjects.dlt_rest_api", "fetch"),
    "sdk.fetch": ("benchmarks.subjects.braintrust_sdk", "fetch"),
    "sdk.push": ("benchmarks.subjects.braintrust_sdk", "push"),
}
# The package each peer needs, so a missing one is reported as skipped rather than failed.
REQUIRES: dict[str, str] = {"dlt.fetch": "dlt", "sdk.fetch": "braintrust", "sdk.push": "braintrust"}


@dataclass(frozen=True)
class CaseSpec:
    """What one case does, against which emulator object.

    Args:
        api_url: the emulator's base URL.
        api_key: the emulator's API key.
        object_type: "project_logs", "experiment" or "dataset".
        object_id: the project id (logs), experiment id or dataset id.
        project_name: the project's name.
        object_name: the experiment's or dataset's name (the project's for logs).
        workdir: a directory the case may write to.
        push_file: the JSON Lines file a push case sends.
    """

    api_url: str
    api_key: str
    object_type: str
    object_id: str
    project_name: str
    object_name: str
    workdir: str
    push_file: str | None = None


@dataclass(frozen=True)
class Counts:
    """What a subject reports about its own work (None where it cannot know)."""

    rows_stored: int | None = None
    rows_fetched: int | None = None
    bytes_written: int | None = None
    table_bytes: int | None = None
    detail: str | None = None


def main(argv: list[str]) -> None:
    subject, spec = argv
    module_name, function_name = SUBJECTS[subject]
    # A peer imports httpx as bt-sync does: without the command line that this environment's click,
    # rich and pygments would otherwise load (0.09 s), which a peer's own environment need not hold.
    defer_httpx_cli()
    run: Callable[[CaseSpec], Counts] = getattr(importlib.import_module(module_name), function_name)
    print(json.dumps(asdict(run(CaseSpec(**json.loads(spec))))))


if __name__ == "__main__":
    main(sys.argv[1:])
