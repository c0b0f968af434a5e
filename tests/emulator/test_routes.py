"""The Braintrust emulator over real HTTP: fetch paging, insert semantics, auth, faults, persistence."""

from __future__ import annotations

import functools
import json
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.api.xact import XACT_TOP_BITS
from connector.emulator import Emulator, FaultRule, ListQuery, Store
from connector.emulator.seed import MAX_BENCH_ROWS, seed_loader

EVERYTHING = ListQuery()


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=_auth(emulator.api_key), timeout=10) as client:
        yield client


@pytest.fixture
def project(emulator: Emulator) -> dict[str, Any]:
    return emulator.store.create_project("tests")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _fetch_pages(http: httpx.Client, path: str, **body: Any) -> list[list[dict[str, Any]]]:
    """Follow the cursor to the end; return every non-empty page."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        response = http.post(path, json=body)
        response.raise_for_status()
        page = response.json()
        if not page["events"]:
            assert page.get("cursor") is None
            return pages
        pages.append(page["events"])
        body["cursor"] = page["cursor"]


def _rows(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page]


def _trace(name: str, spans: int, **fields: Any) -> list[dict[str, Any]]:
    root = {"id": f"{name}-0", "span_id": f"{name}-s0", "root_span_id": name, **fields}
    children = [
        {"id": f"{name}-{n}", "span_id": f"{name}-s{n}", "root_span_id": name, "span_parents": [f"{name}-s0"]}
        for n in range(1, spans)
    ]
    return [root, *children]


# Fetch paging


def _check_paging(pages: list[list[dict[str, Any]]], live: dict[str, str], limit: int) -> None:
    """What every full fetch must satisfy, given the live `_xact_id` of each row id.

    Pages run newest first and hold at most `limit` traces and one version per id;
    older versions may come back on later pages (spec: `FetchLimit`), never twice.
    """
    rows = _rows(pages)
    for page in pages:
        assert len({row["root_span_id"] for row in page}) <= limit
        assert len({row["id"] for row in page}) == len(page)
    order = [(int(row["_xact_id"]), row["root_span_id"]) for row in rows]
    assert order == sorted(order, reverse=True)
    assert len({(row["id"], row["_xact_id"]) for row in rows}) == len(rows)
    first_served: dict[str, str] = {}
    for row in rows:
        first_served.setdefault(row["id"], row["_xact_id"])
    assert first_served == live


def test_paging_serves_newest_first_one_version_per_id_per_page(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.store.generate_logs(project["id"], 600, trace_spans=(1, 6), update_fraction=0.3, rng_seed=3)
    live = {row["id"]: row["_xact_id"] for row in emulator.store.live_rows("project_logs", project["id"])}

    pages = _fetch_pages(http, f"/v1/project_logs/{project['id']}/fetch", limit=7)

    _check_paging(pages, live, 7)
    # Older versions of updated rows come back on later pages.
    assert len(_rows(pages)) > len(live) == 600


def test_limit_counts_traces_not_rows(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    emulator.store.insert("project_logs", project["id"], _trace("a", 5) + _trace("b", 5) + _trace("c", 5))

    pages = _fetch_pages(http, f"/v1/project_logs/{project['id']}/fetch", limit=2)

    assert [len(page) for page in pages] == [10, 5]
    assert [sorted({row["root_span_id"] for row in page}) for page in pages] == [["b", "c"], ["a"]]


def test_get_fetch_and_default_limit(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    emulator.store.insert("project_logs", project["id"], [{"id": f"r{n}", "input": n} for n in range(1200)])
    path = f"/v1/project_logs/{project['id']}/fetch"

    assert len(http.get(path).json()["events"]) == 1000
    assert len(http.get(path, params={"limit": 3}).json()["events"]) == 3
    assert len(http.post(path, json={"limit": 5000}).json()["events"]) == 1000


def test_version_pin_excludes_writes_made_during_paging(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store, path = emulator.store, f"/v1/project_logs/{project['id']}/fetch"
    for batch in range(5):
        store.insert("project_logs", project["id"], [{"id": f"r{batch}-{n}", "input": n} for n in range(4)])
    pin = max(int(row["_xact_id"]) for row in store.live_rows("project_logs", project["id"]))

    first = http.post(path, json={"limit": 6, "version": str(pin)}).json()
    store.insert("project_logs", project["id"], [{"id": "r0-0", "_is_merge": True, "output": "new"}])
    store.insert("project_logs", project["id"], [{"id": "late", "input": "late"}])
    rest = _fetch_pages(http, path, limit=6, cursor=first["cursor"])

    rows = first["events"] + _rows(rest)
    assert len(rows) == 20
    assert all(int(row["_xact_id"]) <= pin for row in rows)


def test_cursor_without_version_ignores_later_writes(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store, path = emulator.store, f"/v1/project_logs/{project['id']}/fetch"
    for batch in range(4):
        store.insert("project_logs", project["id"], [{"id": f"r{batch}-{n}"} for n in range(3)])

    first = http.post(path, json={"limit": 3}).json()
    store.insert("project_logs", project["id"], [{"id": f"new-{n}"} for n in range(10)])
    rows = first["events"] + _rows(_fetch_pages(http, path, limit=3, cursor=first["cursor"]))

    assert sorted(row["id"] for row in rows) == sorted(f"r{b}-{n}" for b in range(4) for n in range(3))


def test_deprecated_max_xact_id_paging_matches_cursor_paging(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.store.generate_logs(project["id"], 300, trace_spans=(1, 5), update_fraction=0.2)
    path = f"/v1/project_logs/{project['id']}/fetch"
    by_cursor = _rows(_fetch_pages(http, path, limit=9))

    by_tuple: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 9}
    while events := http.get(path, params=params).json()["events"]:
        by_tuple += events
        last = min(events, key=lambda row: (int(row["_xact_id"]), row["root_span_id"]))
        params |= {"max_xact_id": last["_xact_id"], "max_root_span_id": last["root_span_id"]}

    assert [(row["id"], row["_xact_id"]) for row in by_tuple] == [
        (row["id"], row["_xact_id"]) for row in by_cursor
    ]


def test_bad_fetch_arguments_are_400(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    path = f"/v1/project_logs/{project['id']}/fetch"
    for body in ({"limit": -1}, {"limit": "x"}, {"version": "abc"}, {"cursor": "not-a-cursor"}, [1]):
        response = http.post(path, json=body)
        assert response.status_code == 400, body
    # The body's JSON types are the spec's: a client that sends a limit as text, or a version as a
    # number, has a bug the API refuses; the query string's form parses its text.
    for body, message in (
        ({"limit": "2"}, 'limit must be a whole number, not "2"'),
        ({"limit": 2.5}, "limit must be a whole number, not 2.5"),
        ({"version": 12}, "version must be a string, not 12"),
        ({"max_xact_id": 5}, "max_xact_id must be a string, not 5"),
        ({"cursor": 3}, "cursor must be a string, not 3"),
    ):
        response = http.post(path, json=body)
        assert (response.status_code, response.text) == (400, message), body
    assert http.get(path, params={"limit": "2"}).status_code == 200
    assert http.post(path, json={"limit": 2.0}).status_code == 200  # one kind of number, to JavaScript
    assert (
        http.post("/v1/project_logs/00000000-0000-4000-8000-000000000000/fetch", json={}).status_code == 404
    )


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "merge", "replace", "delete"]), st.integers(0, 11), st.integers(1, 3)
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, limit=st.integers(1, 4))
def test_paging_property_matches_a_model_of_versions(ops: list[tuple[str, int, int]], limit: int) -> None:
    """Any mix of writes: full paging serves the live rows, newest version first, nothing deleted."""
    store = Store()
    project_id = store.create_project("model")["id"]
    versions: dict[str, int] = {}  # live id -> versions written since it was (re)created
    for op, key, trace in ops:
        row_id = f"r{key}"
        if op == "delete":
            store.insert("project_logs", project_id, [{"id": row_id, "_object_delete": True}])
            versions.pop(row_id, None)
        else:
            event = {"id": row_id, "root_span_id": f"t{trace}", "input": op, "_is_merge": op == "merge"}
            store.insert("project_logs", project_id, [event])
            versions[row_id] = versions.get(row_id, 0) + 1

    pages, cursor = [], None
    while True:
        page = store.fetch("project_logs", project_id, limit=limit, cursor=cursor)
        if page.rows:
            pages.append([orjson.loads(blob) for blob in page.rows])
        if page.cursor is None:
            break
        cursor = page.cursor

    live = {row["id"]: row["_xact_id"] for row in store.live_rows("project_logs", project_id)}
    assert live.keys() == versions.keys()
    _check_paging(pages, live, limit)
    served = Counter(row["id"] for row in _rows(pages))
    assert all(served[row_id] <= n for row_id, n in versions.items())


# Deletes, xact ids and insert semantics


def test_deleted_rows_never_appear_unless_pinned_before_the_delete(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store, path = emulator.store, f"/v1/project_logs/{project['id']}/fetch"
    store.insert("project_logs", project["id"], [{"id": "gone", "input": 1}, {"id": "kept", "input": 1}])
    store.insert("project_logs", project["id"], [{"id": "gone", "_is_merge": True, "output": 2}])
    before_delete = max(int(row["_xact_id"]) for row in store.live_rows("project_logs", project["id"]))
    store.insert("project_logs", project["id"], [{"id": "gone", "_object_delete": True}])

    assert "gone" not in {row["id"] for row in _rows(_fetch_pages(http, path))}
    pinned = _rows(_fetch_pages(http, path, version=str(before_delete)))
    assert {row["id"] for row in pinned} == {"gone", "kept"}
    assert next(row for row in pinned if row["id"] == "gone")["output"] == 2

    store.insert("project_logs", project["id"], [{"id": "gone", "input": "again"}])
    rows = _rows(_fetch_pages(http, path))
    assert [row["input"] for row in rows if row["id"] == "gone"] == ["again"]


def test_delete_during_unpinned_paging_hides_rows_on_later_pages(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store, path = emulator.store, f"/v1/project_logs/{project['id']}/fetch"
    store.insert("project_logs", project["id"], [{"id": "old", "root_span_id": "t0"}])
    store.insert(
        "project_logs", project["id"], [{"id": f"new{n}", "root_span_id": f"t{n}"} for n in range(1, 4)]
    )

    first = http.post(path, json={"limit": 2}).json()
    store.insert("project_logs", project["id"], [{"id": "old", "_object_delete": True}])
    rows = first["events"] + _rows(_fetch_pages(http, path, limit=2, cursor=first["cursor"]))

    assert "old" not in {row["id"] for row in rows}


def test_one_xact_per_insert_request_strictly_increasing(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    path = f"/v1/project_logs/{project['id']}/insert"
    for n in range(5):
        response = http.post(path, json={"events": [{"id": f"r{n}-a"}, {"id": f"r{n}-b"}, {}]})
        assert response.status_code == 200
        assert response.json()["row_ids"][:2] == [f"r{n}-a", f"r{n}-b"]

    rows = emulator.store.live_rows("project_logs", project["id"])
    xacts_by_request: dict[int, set[str]] = {}
    for row in rows:
        xacts_by_request.setdefault(int(row["_xact_id"]), set()).add(row["id"])
    assert len(xacts_by_request) == 5
    assert all(len(ids) == 3 for ids in xacts_by_request.values())
    assert all(len(str(xact)) == 19 and xact & XACT_TOP_BITS == XACT_TOP_BITS for xact in xacts_by_request)


def test_concurrent_inserts_each_get_their_own_xact(emulator: Emulator, project: Any) -> None:
    path = f"{emulator.url}/v1/project_logs/{project['id']}/insert"

    def insert(worker: int) -> None:
        with httpx.Client(headers=_auth(emulator.api_key)) as http:
            for n in range(10):
                http.post(
                    path, json={"events": [{"id": f"w{worker}-{n}-{k}"} for k in range(3)]}
                ).raise_for_status()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(insert, range(6)))

    rows = emulator.store.live_rows("project_logs", project["id"])
    assert len(rows) == 180
    assert len({row["_xact_id"] for row in rows}) == 60


def test_xact_ids_crossing_a_digit_boundary_order_numerically() -> None:
    with (
        Emulator(xact_start=999_999_990) as emulator,
        httpx.Client(base_url=emulator.url, headers=_auth(emulator.api_key)) as http,
    ):
        project = emulator.store.create_project("digits")
        for n in range(20):
            emulator.store.insert("project_logs", project["id"], [{"id": f"r{n}"}])
        path = f"/v1/project_logs/{project['id']}/fetch"

        xacts = [row["_xact_id"] for row in _rows(_fetch_pages(http, path, limit=4))]
        assert [int(x) for x in xacts] == list(range(1_000_000_009, 999_999_989, -1))
        assert xacts != sorted(xacts, reverse=True)  # as strings they would sort differently
        pinned = _rows(_fetch_pages(http, path, version="999999999"))
        assert len(pinned) == 10


def test_replace_merge_and_control_fields(emulator: Emulator, project: Any) -> None:
    store = emulator.store
    store.insert(
        "project_logs",
        project["id"],
        [{"id": "r", "input": {"a": 1, "b": {"c": 1}}, "tags": ["x", "y"], "metadata": {"m": {"n": 1}}}],
    )
    first = store.live_rows("project_logs", project["id"])[0]
    store.insert(
        "project_logs",
        project["id"],
        [
            {
                "id": "r",
                "_is_merge": True,
                "_merge_paths": [["metadata", "m"]],
                "_array_delete": [{"path": ["tags"], "delete": ["x"]}],
                "span_id": "ignored-on-merge",
                "input": {"b": {"d": 2}},
                "metadata": {"m": {"o": 2}},
            }
        ],
    )
    merged = store.live_rows("project_logs", project["id"])[0]
    assert merged["input"] == {"a": 1, "b": {"c": 1, "d": 2}}
    assert merged["metadata"] == {"m": {"o": 2}}
    assert merged["tags"] == ["y"]
    assert (merged["span_id"], merged["root_span_id"], merged["created"]) == (
        first["span_id"],
        first["root_span_id"],
        first["created"],
    )
    assert not any(key.startswith("_") and key != "_xact_id" for key in merged)
    assert (merged["project_id"], merged["org_id"], merged["log_id"]) == (
        project["id"],
        project["org_id"],
        "g",
    )

    store.insert("project_logs", project["id"], [{"id": "r", "output": "replaced"}])
    replaced = store.live_rows("project_logs", project["id"])[0]
    assert "input" not in replaced and replaced["output"] == "replaced"
    assert (replaced["created"], replaced["span_id"]) == (first["created"], first["span_id"])


def test_merged_tags_are_a_set_union_unless_a_merge_path_replaces_them(
    emulator: Emulator, project: Any
) -> None:
    store = emulator.store
    store.insert("project_logs", project["id"], [{"id": "r", "tags": ["t1", "t2"]}])
    # As the SDK merges the rows of one batch: a tag added in a later batch adds to the row's.
    store.insert("project_logs", project["id"], [{"id": "r", "_is_merge": True, "tags": ["fb", "t1", "fb"]}])
    assert store.live_rows("project_logs", project["id"])[0]["tags"] == ["t1", "t2", "fb"]
    store.insert(
        "project_logs",
        project["id"],
        [{"id": "r", "_is_merge": True, "_merge_paths": [["tags"]], "tags": ["x"]}],
    )
    assert store.live_rows("project_logs", project["id"])[0]["tags"] == ["x"]


def test_same_id_twice_in_one_request_is_one_version(emulator: Emulator, project: Any) -> None:
    store = emulator.store
    row_ids = store.insert(
        "project_logs",
        project["id"],
        [{"id": "r", "input": 1}, {"id": "r", "_is_merge": True, "output": 2}, {"id": "new"}],
    )

    assert row_ids == ["r", "r", "new"]
    assert store.version_count("project_logs", project["id"]) == 2
    row = next(row for row in store.live_rows("project_logs", project["id"]) if row["id"] == "r")
    assert (row["input"], row["output"]) == (1, 2)


def test_server_fills_ids_and_object_fields(emulator: Emulator, project: Any) -> None:
    store = emulator.store
    experiment = store.create_experiment(project["id"], "exp")
    dataset = store.create_dataset(project["id"], "ds")
    (log_id,) = store.insert("project_logs", project["id"], [{"input": "no ids", "project_id": "spoofed"}])
    store.insert("experiment", experiment["id"], [{"id": "e"}])
    store.insert("experiment", experiment["id"], [{"id": "child", "_parent_id": "e"}])
    store.insert("dataset", dataset["id"], [{"id": "d", "created": "2024-01-02T03:04:05"}])

    (log,) = store.live_rows("project_logs", project["id"])
    assert log["id"] == log_id and log["root_span_id"] == log["span_id"] and log["is_root"] is True
    assert log["project_id"] == project["id"]
    # Server-made ids are the text of version-4 UUIDs, as Braintrust's are.
    made = [uuid.UUID(log["id"]), uuid.UUID(log["span_id"])]
    assert [(u.version, u.variant, str(u)) for u in made] == [
        (4, uuid.RFC_4122, text) for text in (log["id"], log["span_id"])
    ]
    assert made[0] != made[1]
    row, child = sorted(store.live_rows("experiment", experiment["id"]), key=lambda r: r["id"] != "e")
    assert (row["experiment_id"], row["project_id"]) == (experiment["id"], project["id"])
    assert (child["root_span_id"], child["span_parents"], child["is_root"]) == (
        row["root_span_id"],
        [row["span_id"]],
        False,
    )
    (record,) = store.live_rows("dataset", dataset["id"])
    assert (record["dataset_id"], record["created"]) == (dataset["id"], "2024-01-02T03:04:05.000Z")


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (["not an object"], "events[0] must be a JSON object"),
        ([{"scores": {"acc": 2}}], "events[0].scores"),
        ([{}, {"tags": "x"}], "events[1].tags"),
        ([{"metrics": {"custom": None}}], "events[0].metrics"),
        ([{"span_attributes": {"type": "banana"}}], "events[0].span_attributes"),
        ([{"_object_delete": True}], "needs the id"),
        ("nope", "`events` must be an array"),
        # Parsed (orjson reads 1,024 levels), yet deeper than orjson writes (254).
        ([{}, {"input": functools.reduce(lambda inner, _: {"a": inner}, range(300), 1)}], "cannot be stored"),
    ],
)
def test_malformed_inserts_are_400_and_not_applied(
    emulator: Emulator, http: httpx.Client, project: Any, events: Any, message: str
) -> None:
    response = http.post(f"/v1/project_logs/{project['id']}/insert", json={"events": events})

    assert response.status_code == 400
    assert message in response.text
    assert emulator.store.version_count("project_logs", project["id"]) == 0


def test_oversized_request_is_413_and_not_applied() -> None:
    with (
        Emulator(max_request_bytes=2000) as emulator,
        httpx.Client(base_url=emulator.url, headers=_auth(emulator.api_key)) as http,
    ):
        project = emulator.store.create_project("big")
        path = f"/v1/project_logs/{project['id']}/insert"
        too_big = http.post(path, json={"events": [{"input": "x" * 3000}]})
        small = http.post(path, json={"events": [{"input": "x"}]})

        assert (too_big.status_code, too_big.json()) == (413, {"message": "Request Too Long"})
        assert small.status_code == 200
        assert emulator.store.version_count("project_logs", project["id"]) == 1


# Catalog objects


def test_catalog_create_list_get_patch_delete(http: httpx.Client) -> None:
    first = http.post("/v1/project", json={"name": "one"}).json()
    assert http.post("/v1/project", json={"name": "one", "description": "x"}).json() == first
    names = [http.post("/v1/project", json={"name": name}).json()["name"] for name in ("two", "three")]
    assert names == ["two", "three"]

    listed = http.get("/v1/project").json()["objects"]
    assert [p["name"] for p in listed] == ["three", "two", "one"]
    assert [
        p["name"]
        for p in http.get("/v1/project", params={"limit": 1, "starting_after": listed[0]["id"]}).json()[
            "objects"
        ]
    ] == ["two"]
    assert [
        p["name"]
        for p in http.get("/v1/project", params={"ending_before": listed[2]["id"]}).json()["objects"]
    ] == ["three", "two"]
    assert [p["name"] for p in http.get("/v1/project", params={"project_name": "two"}).json()["objects"]] == [
        "two"
    ]
    assert http.get("/v1/project", params={"org_name": "another-org"}).json()["objects"] == []

    dataset = http.post(
        "/v1/dataset", json={"project_id": first["id"], "name": "ds", "metadata": {"a": 1}}
    ).json()
    experiment = http.post("/v1/experiment", json={"project_id": first["id"], "name": "exp"}).json()
    assert http.get("/v1/dataset", params={"project_name": "one"}).json()["objects"] == [dataset]
    assert http.get("/v1/experiment", params={"project_id": first["id"], "experiment_name": "exp"}).json()[
        "objects"
    ] == [experiment]
    again = http.post(
        "/v1/experiment", json={"project_id": first["id"], "name": "exp", "ensure_new": True}
    ).json()
    assert again["name"] == "exp-1"

    patched = http.patch(
        f"/v1/dataset/{dataset['id']}", json={"description": "d", "metadata": {"b": 2}}
    ).json()
    assert (patched["description"], patched["metadata"]) == ("d", {"a": 1, "b": 2})
    assert http.get(f"/v1/dataset/{dataset['id']}").json() == patched

    deleted = http.delete(f"/v1/project/{first['id']}").json()
    assert deleted["deleted_at"] is not None
    assert http.get(f"/v1/project/{first['id']}").status_code == 404
    assert http.get(f"/v1/dataset/{dataset['id']}").status_code == 404  # went with its project
    assert http.post("/v1/dataset", json={"project_id": first["id"], "name": "x"}).status_code == 400


def test_summaries(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    dataset = emulator.store.create_dataset(project["id"], "ds")
    emulator.store.insert("dataset", dataset["id"], [{"id": str(n), "input": n} for n in range(5)])
    emulator.store.insert("dataset", dataset["id"], [{"id": "0", "_object_delete": True}])
    experiment = emulator.store.create_experiment(project["id"], "exp")
    emulator.store.insert("experiment", experiment["id"], [{"scores": {"acc": 1}}, {"scores": {"acc": 0.5}}])

    summary = http.get(f"/v1/dataset/{dataset['id']}/summarize", params={"summarize_data": "true"}).json()
    assert summary["data_summary"] == {"total_records": 4}
    assert summary["dataset_url"].endswith("/p/tests/datasets/ds")
    scores = http.get(
        f"/v1/experiment/{experiment['id']}/summarize", params={"summarize_scores": "true"}
    ).json()
    assert scores["scores"]["acc"]["score"] == 0.75


# Auth and SDK bootstrap


def test_auth_errors_never_echo_the_key(emulator: Emulator) -> None:
    url = f"{emulator.url}/v1/project"
    missing = httpx.get(url)
    wrong = httpx.get(url, headers=_auth("sk-wrong-secret"))
    malformed = httpx.get(url, headers={"Authorization": emulator.api_key})

    assert [r.status_code for r in (missing, wrong, malformed)] == [401, 401, 401]
    assert "sk-wrong-secret" not in wrong.text and emulator.api_key not in malformed.text


def test_read_only_key_reads_but_cannot_write(emulator: Emulator, project: Any) -> None:
    headers = _auth(emulator.api_key + "-readonly")
    fetch = httpx.post(f"{emulator.url}/v1/project_logs/{project['id']}/fetch", json={}, headers=headers)
    insert = httpx.post(
        f"{emulator.url}/v1/project_logs/{project['id']}/insert", json={"events": [{}]}, headers=headers
    )

    assert (fetch.status_code, insert.status_code) == (200, 403)


def test_login_and_version(emulator: Emulator, http: httpx.Client) -> None:
    (org,) = http.post("/api/apikey/login").json()["org_info"]
    assert (org["name"], org["api_url"]) == ("emulator-org", emulator.url)
    assert httpx.get(f"{emulator.url}/version").status_code == 200
    assert httpx.get(f"{emulator.url}/v1").text == "Hello, World!"
    assert http.get("/v1/nothing-here").status_code == 404
    assert http.put("/v1/project").status_code == 405


# The SDK's own endpoints: /logs3, feedback, /btql


def _log_row(project_id: str, **fields: Any) -> dict[str, Any]:
    return {"project_id": project_id, "log_id": "g", **fields}


def test_logs3_writes_each_row_to_the_object_it_names_in_one_xact(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store = emulator.store
    experiment = store.create_experiment(project["id"], "exp")
    dataset = store.create_dataset(project["id"], "ds")
    store.insert("dataset", dataset["id"], [{"id": "old", "input": 0}])
    rows = [
        _log_row(project["id"], id="span", input="q", span_id="s", root_span_id="t"),
        {"experiment_id": experiment["id"], "id": "e", "scores": {"acc": 1}},
        _log_row(project["id"], id="span", _is_merge=True, output="a"),
        {"dataset_id": dataset["id"], "id": "new", "input": 1, "expected": 2},
        {"dataset_id": dataset["id"], "id": "old", "_object_delete": True},
    ]

    response = http.post("/logs3", json={"rows": rows, "api_version": 2})

    assert response.status_code == 200, response.text
    (log,) = store.live_rows("project_logs", project["id"])
    assert (log["input"], log["output"], log["root_span_id"], log["log_id"]) == ("q", "a", "t", "g")
    (record,) = store.live_rows("dataset", dataset["id"])
    assert (record["id"], record["dataset_id"]) == ("new", dataset["id"])
    (row,) = store.live_rows("experiment", experiment["id"])
    assert {log["_xact_id"], record["_xact_id"], row["_xact_id"]} == {row["_xact_id"]}
    assert emulator.stats.rows_inserted == {project["id"]: 2, experiment["id"]: 1, dataset["id"]: 2}


@pytest.mark.parametrize(
    ("bad_row", "status", "message"),
    [
        ({"id": "x"}, 400, "rows[1] names no object"),
        ({"prompt_session_id": "p", "log_id": "x"}, 400, "playground"),
        ({"experiment_id": "00000000-0000-4000-8000-000000000000"}, 404, "experiment"),
        ({"scores": {"accuracy": 3}}, 400, "rows[1].scores"),
    ],
)
def test_logs3_request_with_a_bad_row_writes_nothing(
    emulator: Emulator, http: httpx.Client, project: Any, bad_row: dict[str, Any], status: int, message: str
) -> None:
    rows = [_log_row(project["id"], id="good"), bad_row]

    response = http.post("/logs3", json={"rows": rows, "api_version": 2})

    assert response.status_code == status and message in response.text, response.text
    assert emulator.store.version_count("project_logs", project["id"]) == 0


def test_logs3_request_with_a_row_too_deep_to_store_writes_nothing_in_any_object(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    # Parsed (orjson reads 1,024 levels), but not stored (it writes 254): found after the first object's rows.
    dataset = emulator.store.create_dataset(project["id"], "ds")
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    rows = [_log_row(project["id"], id="good"), {"dataset_id": dataset["id"], "id": "deep", "input": deep}]

    response = http.post("/logs3", json={"rows": rows, "api_version": 2})

    assert response.status_code == 400 and "cannot be stored" in response.text, response.text
    assert emulator.store.version_count("project_logs", project["id"]) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": []}, '{"rows": [...], "api_version": 2}'),
        ({"rows": [], "api_version": 1}, "api_version 1"),
        ({"rows": {"type": "logs3_overflow", "key": "k"}, "api_version": 2}, "overflow"),
    ],
)
def test_logs3_bodies_the_emulator_does_not_serve(http: httpx.Client, body: Any, message: str) -> None:
    response = http.post("/logs3", json=body)

    assert response.status_code == 400 and message in response.text, response.text


def test_feedback_and_comments_stay_on_their_row_across_later_writes(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    store, path = emulator.store, f"/v1/project_logs/{project['id']}"
    store.insert("project_logs", project["id"], [{"id": "r", "input": "q", "metadata": {"model": "m"}}])
    audit = {"_audit_source": "app", "_audit_metadata": {"reviewer": "ann"}}
    sdk_feedback = [
        _log_row(project["id"], id="r", _is_merge=True, scores={"user": 1}, **audit),
        _log_row(project["id"], id="c1", origin={"id": "r"}, comment={"text": "first"}, **audit),
    ]
    assert http.post("/logs3", json={"rows": sdk_feedback, "api_version": 2}).status_code == 200
    # The comment again, as a client retrying a write whose answer it lost sends it: still one comment.
    assert http.post("/logs3", json={"rows": sdk_feedback[1:], "api_version": 2}).status_code == 200
    rest_feedback = [{"id": "r", "tags": ["checked"], "comment": "second", "source": "api"}]
    assert http.post(f"{path}/feedback", json={"feedback": rest_feedback}).json() == {"status": "success"}
    (reviewed,) = store.live_rows("project_logs", project["id"])
    assert (reviewed["scores"], reviewed["tags"], reviewed["metadata"]) == (
        {"user": 1},
        ["checked"],
        {"model": "m"},
    )
    # A later replace and merge keep the trail; a client cannot write it directly.
    http.post(f"{path}/insert", json={"events": [{"id": "r", "input": "q2", "comments": ["spoofed"]}]})
    http.post(f"{path}/insert", json={"events": [{"id": "r", "_is_merge": True, "output": "a"}]})

    (row,) = store.live_rows("project_logs", project["id"])
    assert (row["input"], row["output"], "scores" in row) == ("q2", "a", False)
    assert [(c["comment"]["text"], c["source"], c["metadata"]) for c in row["comments"]] == [
        ("first", "app", {"reviewer": "ann"}),
        ("second", "api", None),
    ]
    assert [(a["action"], a["source"], a["metadata"]) for a in row["audit_data"]] == [
        ("merge", "app", {"reviewer": "ann"}),
        ("merge", "api", None),
    ]
    assert all(entry["_xact_id"] and entry["created"] for entry in row["comments"] + row["audit_data"])
    assert not [key for key in row if key.startswith("_audit")]

    store.insert("project_logs", project["id"], [{"id": "r", "_object_delete": True}])
    store.insert("project_logs", project["id"], [{"id": "r", "input": "new"}])
    (reborn,) = store.live_rows("project_logs", project["id"])
    assert "comments" not in reborn and "audit_data" not in reborn


def test_a_comment_that_comes_before_its_row_joins_it_and_spares_its_batch(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    # The SDK sends one flush's batches in parallel: a comment may arrive before the row it is about.
    early = [
        _log_row(project["id"], id="c1", origin={"id": "later"}, comment={"text": "early"}),
        _log_row(project["id"], id="other", input="kept"),
    ]
    assert http.post("/logs3", json={"rows": early, "api_version": 2}).status_code == 200
    # Sent again, as a client retrying a lost answer does; then with a row too deep to store, refused whole.
    assert http.post("/logs3", json={"rows": early[:1], "api_version": 2}).status_code == 200
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    refused = [
        _log_row(project["id"], id="c2", origin={"id": "later"}, comment={"text": "refused"}),
        _log_row(project["id"], id="later", input=deep),
    ]
    assert http.post("/logs3", json={"rows": refused, "api_version": 2}).status_code == 400
    assert [row["id"] for row in emulator.store.live_rows("project_logs", project["id"])] == ["other"]
    later = [_log_row(project["id"], id="later", input="q")]
    assert http.post("/logs3", json={"rows": later, "api_version": 2}).status_code == 200
    rows = {row["id"]: row for row in emulator.store.live_rows("project_logs", project["id"])}
    assert [c["comment"]["text"] for c in rows["later"]["comments"]] == ["early"]
    assert "comments" not in rows["other"]


@pytest.mark.parametrize(
    ("object_type", "item", "message"),
    [
        ("dataset", {"id": "r", "scores": {"a": 1}}, "dataset feedback takes no scores"),
        ("project_logs", {"id": "r", "metadata": {"a": 1}}, "gives no feedback"),
        ("project_logs", {"id": "r", "tags": ["t"], "source": "robot"}, "source must be one of"),
        ("experiment", {"scores": {"a": 1}}, "the id of the row"),
    ],
)
def test_bad_feedback_is_400_and_not_applied(
    emulator: Emulator, http: httpx.Client, project: Any, object_type: str, item: Any, message: str
) -> None:
    store = emulator.store
    object_id = {
        "project_logs": project["id"],
        "experiment": store.create_experiment(project["id"], "exp")["id"],
        "dataset": store.create_dataset(project["id"], "ds")["id"],
    }[object_type]

    response = http.post(f"/v1/{object_type}/{object_id}/feedback", json={"feedback": [item]})

    assert response.status_code == 400 and message in response.text, response.text
    assert store.version_count(object_type, object_id) == 0


def _btql_body(object_type: str, object_id: str, **query: Any) -> dict[str, Any]:
    """The body of the SDK's object fetch (`ObjectFetcher._refetch`)."""
    source = {
        "op": "function",
        "name": {"op": "ident", "name": [object_type]},
        "args": [{"op": "literal", "value": object_id}],
    }
    return {
        "query": {"select": [{"op": "star"}], "from": source, **query},
        "use_columnstore": False,
        "brainstore_realtime": True,
        "query_source": f"py_sdk_object_fetcher_{object_type}",
    }


def test_btql_object_fetch_pages_like_fetch(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    emulator.store.generate_logs(project["id"], 300, trace_spans=(1, 5), update_fraction=0.2)
    by_fetch = _rows(_fetch_pages(http, f"/v1/project_logs/{project['id']}/fetch", limit=9))

    by_btql: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = _btql_body("project_logs", project["id"], limit=9, cursor=cursor)
        page = http.post("/btql", json=body).json()
        by_btql += page["data"]
        if not (cursor := page.get("cursor")):
            break

    assert by_btql == by_fetch
    pin = by_fetch[len(by_fetch) // 2]["_xact_id"]
    pinned = http.post("/btql", json={**_btql_body("project_logs", project["id"]), "version": pin}).json()
    assert pinned["data"] and all(int(row["_xact_id"]) <= int(pin) for row in pinned["data"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filter": {"op": "eq"}}, "also has filter"),
        ({"select": [{"op": "ident", "name": ["id"]}]}, "only `select *`"),
        ({"from": {"op": "function", "name": {"op": "ident", "name": ["prompt"]}}}, "`from` must be one of"),
    ],
)
def test_btql_other_queries_are_400(
    http: httpx.Client, project: Any, change: dict[str, Any], message: str
) -> None:
    body = _btql_body("project_logs", project["id"])
    body["query"] |= change

    response = http.post("/btql", json=body)

    assert response.status_code == 400 and message in response.text, response.text
    assert http.post("/btql", json={"query": "select: *"}).status_code == 400


# Faults


def test_status_fault_with_retry_after_then_recovers(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/fetch", status=429, retry_after="2", after=1))
    path = f"/v1/project_logs/{project['id']}/fetch"

    statuses = [http.post(path, json={}) for _ in range(3)]

    assert [r.status_code for r in statuses] == [200, 429, 200]
    assert statuses[1].headers["Retry-After"] == "2"
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 3


def test_faulted_insert_is_not_applied(emulator: Emulator, http: httpx.Client, project: Any) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=503, times=2))
    path = f"/v1/project_logs/{project['id']}/insert"

    statuses = [http.post(path, json={"events": [{"id": "r"}]}).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert emulator.store.version_count("project_logs", project["id"]) == 1


def test_drop_closes_without_response_and_does_not_apply(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.faults.add(FaultRule(kind="drop", route="/insert"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/v1/project_logs/{project['id']}/insert", json={"events": [{"id": "r"}]})
    assert emulator.store.version_count("project_logs", project["id"]) == 0


def test_drop_after_apply_loses_the_ack_but_keeps_the_write(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.faults.add(FaultRule(kind="drop_after_apply", route="/insert"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/v1/project_logs/{project['id']}/insert", json={"events": [{"id": "r"}]})
    assert emulator.store.version_count("project_logs", project["id"]) == 1


def test_truncate_sends_part_of_the_body(emulator: Emulator, project: Any) -> None:
    emulator.store.insert(
        "project_logs", project["id"], [{"id": f"r{n}", "input": "x" * 100} for n in range(20)]
    )
    emulator.faults.add(FaultRule(kind="truncate", route="/fetch"))
    host, port = emulator.url.removeprefix("http://").split(":")
    request = (
        f"GET /v1/project_logs/{project['id']}/fetch HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {emulator.api_key}\r\n\r\n"
    )

    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request.encode())
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )

    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) < length
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


def test_truncate_is_a_transport_error_for_httpx(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.faults.add(FaultRule(kind="truncate", route="/fetch"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/v1/project_logs/{project['id']}/fetch", json={})


def test_repeat_cursor_returns_a_cursor_that_does_not_advance(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    emulator.store.insert("project_logs", project["id"], [{"id": f"r{n}"} for n in range(5)])
    path = f"/v1/project_logs/{project['id']}/fetch"
    first = http.post(path, json={"limit": 1}).json()
    emulator.faults.add(FaultRule(kind="repeat_cursor", route="/fetch", times=2))

    again = http.post(path, json={"limit": 1, "cursor": first["cursor"]}).json()
    third = http.post(path, json={"limit": 1, "cursor": again["cursor"]}).json()

    assert again["cursor"] == first["cursor"] == third["cursor"]
    assert again["events"] == third["events"] != first["events"]


def test_slow_fault_delays(emulator: Emulator, http: httpx.Client) -> None:
    emulator.faults.add(FaultRule(kind="slow", route="/v1/project", delay_s=0.3))

    with pytest.raises(httpx.ReadTimeout):
        http.get("/v1/project", timeout=0.1)
    assert http.get("/v1/project").status_code == 200


def test_admin_endpoints_add_faults_and_report_stats(emulator: Emulator, http: httpx.Client) -> None:
    rules = [{"kind": "status", "status": 500, "route": "^/v1/project$", "times": 2}]
    assert http.post("/_emulator/faults", json=rules).json() == {"pending": 1}
    assert http.post("/_emulator/faults", json={"kind": "nope"}).status_code == 400
    # It said "FaultRule.__init__() missing 1 required positional argument: 'kind'".
    kindless = http.post("/_emulator/faults", json={"route": "/fetch"})
    assert (
        kindless.status_code == 400 and "a fault rule needs its `kind`: one of status, slow" in kindless.text
    )

    # A route that is no regular expression: an internal error, with a traceback in the emulator's log.
    unbalanced = http.post("/_emulator/faults", json={"kind": "status", "route": "("})
    assert unbalanced.status_code == 400
    assert "fault rule field 'route' is no regular expression (missing )" in unbalanced.text
    assert [http.get("/v1/project").status_code for _ in range(3)] == [500, 500, 200]
    assert http.get("/_emulator/stats").json()["requests"]["GET project.list"] == 3
    http.post("/_emulator/faults", json=rules)
    assert http.delete("/_emulator/faults").json() == {"pending": 0}
    assert http.post("/_emulator/stats/reset").json()["requests"] == {}
    assert emulator.stats.requests == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", {"events": []}),
        ("route", 5),
        ("method", ["GET"]),
        ("status", "500"),
        ("status", True),
        ("delay_s", "1"),
        ("times", 1.5),
        ("after", None),
        ("kind", None),
    ],
)
def test_a_fault_rule_of_the_wrong_json_type_is_refused(
    emulator: Emulator, http: httpx.Client, field: str, value: Any
) -> None:
    # A body given as an object was taken, then every request it matched went unanswered.
    rule = {"kind": "body", "body": '{"events": []}', "route": "/v1/project"} | {field: value}
    refused = http.post("/_emulator/faults", json=rule)
    assert (refused.status_code, emulator.faults.pending()) == (400, [])
    assert f"fault rule field '{field}' must be" in refused.text


# Persistence and seeds


def test_state_dir_survives_a_restart(tmp_path: Path) -> None:
    with Emulator(state_dir=tmp_path, seed="demo") as first:
        http = httpx.Client(base_url=first.url, headers=_auth(first.api_key))
        project = http.post("/v1/project", json={"name": "kept"}).json()
        dataset = http.post("/v1/dataset", json={"project_id": project["id"], "name": "ds"}).json()
        http.post(
            f"/v1/dataset/{dataset['id']}/insert", json={"events": [{"id": "a", "input": 1}, {"id": "b"}]}
        )
        http.post(
            f"/v1/dataset/{dataset['id']}/insert",
            json={"events": [{"id": "a", "_is_merge": True, "output": 2}]},
        )
        http.post(
            f"/v1/dataset/{dataset['id']}/insert", json={"events": [{"id": "b", "_object_delete": True}]}
        )
        demo_projects = first.store.list_objects("project", EVERYTHING)
        before = first.store.live_rows("dataset", dataset["id"])
        last_xact = int(before[0]["_xact_id"])

    second = Emulator(state_dir=tmp_path, seed="empty")
    assert second.store.list_objects("project", EVERYTHING) == demo_projects
    assert second.store.live_rows("dataset", dataset["id"]) == before
    assert second.store.version_count("dataset", dataset["id"]) == 3
    second.store.insert("dataset", dataset["id"], [{"id": "c"}])
    newest = max(int(row["_xact_id"]) for row in second.store.live_rows("dataset", dataset["id"]))
    assert newest > last_xact


def test_a_lone_surrogate_escape_is_stored_merged_kept_and_served_as_written(tmp_path: Path) -> None:
    # Half an emoji, as the SDK's `json.dumps` writes text cut in the middle of one: valid JSON.
    cut = {"input": "half \ud83d", "metadata": {"k\udc00": ["\U0001f600 whole"]}}
    with Emulator(state_dir=tmp_path, seed="empty") as first:
        http = httpx.Client(base_url=first.url, headers=_auth(first.api_key))
        project = http.post("/v1/project", content=json.dumps({"name": "cut \ud83d"})).json()
        logs = f"/v1/project_logs/{project['id']}"
        inserted = http.post(
            f"{logs}/insert", content=json.dumps({"events": [{"id": "a", **cut}, {"id": "b"}]})
        )
        merged = http.post(
            f"{logs}/insert",
            content=json.dumps({"events": [{"id": "a", "output": "\udc00", "_is_merge": True}]}),
        )
        assert (inserted.status_code, merged.status_code) == (200, 200), (inserted.text, merged.text)
        # Read as any other body: a number beyond a double, or NaN, is refused with it; so are text that is
        # not UTF-8 and nesting past any parser's depth.
        for body in (
            b'{"events": [{"id": "c", "input": "\xff \\ud83d"}]}',
            b'{"x": "\\ud83d", "d": ' + b"[" * 3000,
            '{"x": "\\ud83d"}'.encode("utf-16"),
        ):
            response = http.post(f"{logs}/insert", content=body)
            assert response.status_code == 400, response.text
        for number in ("1e400", "NaN", "9" * 5000):
            beyond = http.post(
                f"{logs}/insert", content=f'{{"events": [{{"id": "c", "input": "\\ud83d", "n": {number}}}]}}'
            )
            assert beyond.status_code == 400, beyond.text
        served = json.loads(http.post(f"{logs}/fetch", json={}).text)["events"]
        # Deleted by an id holding one, then shown in a link: the journal keeps the delete.
        deleted = (
            http.post(f"{logs}/insert", content=json.dumps({"events": [{"id": "gone \ud83d"}]})),
            http.post(
                f"{logs}/insert",
                content=json.dumps({"events": [{"id": "gone \ud83d", "_object_delete": True}]}),
            ),
        )
        assert [response.status_code for response in deleted] == [200, 200], deleted[1].text
        dataset = http.post(
            "/v1/dataset", content=json.dumps({"project_id": project["id"], "name": "d \ud83d"})
        )
        attachment = http.post(
            "/attachment", content=json.dumps({"key": "k\ud83d", "content_type": "text/plain"})
        )
        # Refused: no upload URL could name it.
        assert attachment.status_code == 400 and "lone UTF-16 surrogate" in attachment.text, attachment.text
        summary = http.get(f"/v1/dataset/{dataset.json()['id']}/summarize")
        assert summary.status_code == 200 and summary.json()["project_url"].endswith("/p/cut%20%3F"), (
            summary.text
        )
    assert project["name"] == "cut \ud83d"
    assert {row["id"]: {field: row.get(field) for field in (*cut, "output")} for row in served} == {
        "a": {**cut, "output": "\udc00"},
        "b": {"input": None, "metadata": None, "output": None},
    }

    again = Emulator(state_dir=tmp_path, seed="empty")
    assert again.store.live_rows("project_logs", project["id"]) == first.store.live_rows(
        "project_logs", project["id"]
    )


def test_a_record_torn_by_a_crash_is_skipped_and_later_writes_are_kept(tmp_path: Path) -> None:
    with Emulator(state_dir=tmp_path, seed="empty") as first:
        project = first.store.create_project("kept")
        first.store.insert("project_logs", project["id"], [{"id": "before", "input": "café"}])
    journal = tmp_path / "journal.jsonl"
    whole = journal.read_bytes()
    # Cut in the middle of the last record's "é": a crash mid-append.
    journal.write_bytes(whole[: whole.rindex("é".encode()) + 1])

    second = Emulator(state_dir=tmp_path, seed="empty")
    assert second.store.live_rows("project_logs", project["id"]) == []
    second.store.insert("project_logs", project["id"], [{"id": "after"}])

    third = Emulator(state_dir=tmp_path, seed="empty")
    assert [row["id"] for row in third.store.live_rows("project_logs", project["id"])] == ["after"]
    # A line no record can be read from, such as a torn one with a record glued to it, is skipped alone.
    with journal.open("ab") as file:
        file.write(b'{"op": "events", "type": "project_logs", "obj\n')
    fourth = Emulator(state_dir=tmp_path, seed="empty")
    fourth.store.insert("project_logs", project["id"], [{"id": "last"}])
    fifth = Emulator(state_dir=tmp_path, seed="empty")
    assert sorted(row["id"] for row in fifth.store.live_rows("project_logs", project["id"])) == [
        "after",
        "last",
    ]
    # A record resting on a skipped one (a dataset whose creation a full disk tore) is skipped too.
    dataset = fifth.store.create_dataset(project["id"], "torn")
    fifth.store.insert("dataset", dataset["id"], [{"id": "orphan"}])
    lines = journal.read_bytes().splitlines(keepends=True)
    created = next(n for n, line in enumerate(lines) if b'"torn"' in line)
    journal.write_bytes(b"".join([*lines[:created], lines[created][:40] + b"\n", *lines[created + 1 :]]))
    sixth = Emulator(state_dir=tmp_path, seed="empty")
    assert sorted(row["id"] for row in sixth.store.live_rows("project_logs", project["id"])) == [
        "after",
        "last",
    ]


def test_list_filters_take_their_values_repeated_or_comma_separated(http: httpx.Client) -> None:
    # The spec repeats the parameter; the official `braintrust-api` client joins the values with commas.
    made = [http.post("/v1/project", json={"name": name}).json()["id"] for name in ("a", "b", "c")]
    for query in (f"ids={made[0]}&ids={made[1]}", f"ids={made[0]},{made[1]}"):
        listed = http.get(f"/v1/project?{query}").json()["objects"]
        assert sorted(project["id"] for project in listed) == sorted(made[:2]), query
    assert http.get("/v1/project?ids=,").json()["objects"] == []


@pytest.mark.parametrize(
    "query",
    ["project_id=support-bot", "ids=not-a-uuid", "ids={good},nope", "starting_after=x", "ending_before=1"],
)
def test_a_listing_by_an_id_that_is_not_a_uuid_is_refused(http: httpx.Client, query: str) -> None:
    # A name where an id belongs: the API's 400, not an empty listing that looks like no experiment.
    good = http.post("/v1/project", json={"name": "p"}).json()["id"]
    response = http.get(f"/v1/experiment?{query.format(good=good)}")
    assert response.status_code == 400 and "must be a UUID" in response.text


def test_a_listing_matches_ids_in_any_case(http: httpx.Client) -> None:
    made = [http.post("/v1/project", json={"name": name}).json()["id"] for name in ("a", "b")]
    assert [p["id"] for p in http.get(f"/v1/project?ids={made[0].upper()}").json()["objects"]] == made[:1]
    assert http.get(f"/v1/experiment?project_id={made[1].upper()}").status_code == 200
    # So does an id in the path: a listed object is never one the emulator then reports missing.
    assert http.get(f"/v1/project/{made[0].upper()}").json()["id"] == made[0]
    assert http.post(f"/v1/project_logs/{made[0].upper()}/fetch", json={}).status_code == 200


def test_experiments_are_listed_a_thousand_at_a_time_unless_a_limit_is_given(
    emulator: Emulator, http: httpx.Client, project: Any
) -> None:
    # The spec's default (`AppLimitWithDefaultParam`): a client that never pages sees only the first 1000.
    for number in range(1001):
        emulator.store.create_experiment(project["id"], f"e{number}")
    assert len(http.get("/v1/experiment").json()["objects"]) == 1000
    assert len(http.get("/v1/experiment", params={"limit": 1001}).json()["objects"]) == 1001


def test_a_negative_content_length_is_a_bad_request(emulator: Emulator) -> None:
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"POST /v1/project HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        assert connection.recv(1024).startswith(b"HTTP/1.1 400 ")


def test_a_comment_waiting_for_its_row_joins_it_after_a_restart(tmp_path: Path) -> None:
    with Emulator(state_dir=tmp_path, seed="empty") as first:
        project = first.store.create_project("kept")
        early = {"id": "c1", "origin": {"id": "later"}, "comment": {"text": "early"}}
        first.store.insert("project_logs", project["id"], [early])

    second = Emulator(state_dir=tmp_path, seed="empty")
    second.store.insert("project_logs", project["id"], [{"id": "later", "input": "q"}])
    (row,) = second.store.live_rows("project_logs", project["id"])
    assert [comment["comment"]["text"] for comment in row["comments"]] == ["early"]
    # Joined: no longer waiting after another restart, so it joins no later write again.
    third = Emulator(state_dir=tmp_path, seed="empty")
    third.store.insert("project_logs", project["id"], [{"id": "later", "input": "q2"}])
    (row,) = third.store.live_rows("project_logs", project["id"])
    assert "comments" in row and len(row["comments"]) == 1


def test_dataset_records_a_journal_kept_without_their_null_fields_get_them_back(tmp_path: Path) -> None:
    with Emulator(state_dir=tmp_path, seed="empty") as first:
        project = first.store.create_project("kept")
        dataset = first.store.create_dataset(project["id"], "ds")
        first.store.insert("dataset", dataset["id"], [{"id": "a", "input": 1}])
    journal = tmp_path / "journal.jsonl"
    # As an emulator wrote the record before it stored every dataset field: no `expected`, `tags`...
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    for record in records:
        for row in record.get("rows", ()):
            for field in ("expected", "metadata", "tags"):
                del row[field]
    journal.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))

    (row,) = Emulator(state_dir=tmp_path, seed="empty").store.live_rows("dataset", dataset["id"])

    assert {field: row[field] for field in ("input", "expected", "metadata", "tags")} == {
        "input": 1, "expected": None, "metadata": None, "tags": None
    }  # fmt: skip


def test_demo_seed_is_rich_and_deterministic() -> None:
    store, again = Emulator(seed="demo").store, Emulator(seed="demo").store
    projects = store.list_objects("project", EVERYTHING)
    experiments = store.list_objects("experiment", EVERYTHING)
    datasets = store.list_objects("dataset", EVERYTHING)

    assert (len(projects), len(experiments), len(datasets)) == (3, 2, 2)
    for project in projects:
        rows = store.live_rows("project_logs", project["id"])
        assert 200 <= len(rows) < store.version_count("project_logs", project["id"])
        assert {"input", "output", "metadata", "metrics", "span_attributes"} <= rows[0].keys()
    assert all(
        row.get("scores") for row in store.live_rows("experiment", experiments[0]["id"]) if row["is_root"]
    )
    assert all(
        {"input", "expected", "metadata", "tags"} <= row.keys()
        for row in store.live_rows("dataset", datasets[0]["id"])
    )

    def content(s: Store) -> list[Any]:
        project = s.list_objects("project", EVERYTHING)[0]
        return sorted((row["id"], row["input"]) for row in s.live_rows("project_logs", project["id"]))

    assert content(store) == content(again)


def test_bench_seed_and_unknown_seed() -> None:
    store = Emulator(seed="bench:2000").store
    (project,) = store.list_objects("project", EVERYTHING)
    assert store.live_count("project_logs", project["id"]) == 2000
    with pytest.raises(ValueError, match="unknown seed"):
        Emulator(seed="lots")


def test_the_bench_seed_holds_at_most_its_cap() -> None:
    seed_loader(f"bench:{MAX_BENCH_ROWS}")  # accepted (loaded only when an emulator starts)
    with pytest.raises(ValueError, match="bench:N holds at most 100,000,000 rows"):
        seed_loader(f"bench:{MAX_BENCH_ROWS + 1}")
