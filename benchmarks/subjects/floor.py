"""The floor: the least work a Python client can do to read (or write) the same data.

Reading: POST `fetch` pages following the cursor, decode each with orjson, keep
nothing. Writing: read the file line by line and POST 1000-event insert
requests, one at a time. Nothing here dedupes, types, stores or checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import httpx
import orjson

from benchmarks.cases import CaseSpec, Counts

PAGE_LIMIT = 1000
PUSH_BATCH_ROWS = 1000
_JSON = {"Content-Type": "application/json"}


def _http(spec: CaseSpec) -> httpx.Client:
    return httpx.Client(
        base_url=spec.api_url, headers={"Authorization": f"Bearer {spec.api_key}"}, timeout=120
    )


def fetch(spec: CaseSpec) -> Counts:
    """Page through every version of the object and decode it; store nothing."""
    path = f"/v1/{spec.object_type}/{spec.object_id}/fetch"
    rows = pages = 0
    cursor: str | None = None
    with _http(spec) as http:
        while True:
            body: dict[str, object] = {"limit": PAGE_LIMIT}
            if cursor:
                body["cursor"] = cursor
            response = http.post(path, content=orjson.dumps(body), headers=_JSON)
            response.raise_for_status()
            page = orjson.loads(response.content)
            rows += len(page["events"])
            pages += 1
            cursor = page.get("cursor")
            if not cursor:
                break
    return Counts(rows_fetched=rows, detail=f"{pages} pages")


def push(spec: CaseSpec) -> Counts:
    """Insert every line of the file into a dataset, 1000 events per request."""
    assert spec.push_file is not None
    sent = requests = 0
    with _http(spec) as http:
        project = http.post("/v1/project", content=orjson.dumps({"name": spec.project_name}), headers=_JSON)
        create = {"project_id": orjson.loads(project.content)["id"], "name": spec.object_name}
        dataset = http.post("/v1/dataset", content=orjson.dumps(create), headers=_JSON)
        path = f"/v1/dataset/{orjson.loads(dataset.content)['id']}/insert"
        with open(spec.push_file, "rb") as lines:
            for batch in _batches(lines):
                body = b'{"events":[' + b",".join(batch) + b"]}"
                http.post(path, content=body, headers=_JSON).raise_for_status()
                sent += len(batch)
                requests += 1
    return Counts(rows_stored=sent, rows_fetched=sent, detail=f"{requests} requests")


def _batches(lines: Iterator[bytes]) -> Iterator[list[bytes]]:
    # Each line already is an insert event: re-encoding it would only add work to the floor.
    while batch := [line.rstrip(b"\n") for line in islice(lines, PUSH_BATCH_ROWS)]:
        yield batch
