"""`push --sql` against the real emulator: sync, curate a dataset from a query, rerun, sync back, compare.

The upstream project's logs are synced into a real warehouse once per module (a sync costs
seconds); each test pushes the result of a query over it into a dataset of its own, then
reads what landed back (from the emulator, or synced into the same warehouse) and compares
it with what the query returns. The test that edits upstream has an emulator of its own.
"""

from __future__ import annotations

import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from connector.api.client import BraintrustClient
from connector.cli import main
from connector.cli.push import describe
from connector.config import WarehouseSettings
from connector.destinations.base import ObjectRef
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import PushError, ServerUnavailable
from connector.progress import NullProgress
from connector.push.options import PushOptions, PushSummary
from connector.push.run import push
from connector.wiring import open_destination
from schemas.kinds import PROJECT
from tests.helpers import cli_warehouse_args, fast_client, query, sync, warehouse_in
from tests.push.helpers import run_cli

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "braintrust-openapi.yaml"
PROJECT_NAME, DATASET = "support-bot", "hard-cases"
TOPICS = ("billing", "shipping", "accounts", "returns")
# One input of every JSON shape, and a JSON string that looks like an object (it must stay a string).
INPUTS: tuple[Any, ...] = (
    "Where is my order?",
    {"messages": [{"role": "user", "content": "refund?"}]},
    42,
    [1, "two"],
    '{"looks": "like JSON"}',
)
ROOTS = 40
CURATION = """
    SELECT id, project_id, _xact_id, input, output AS expected, metadata, tags
    FROM project_logs
    WHERE is_root AND scores['accuracy'] < 0.5
"""
CURATED = 20

Push = Callable[..., PushSummary]


def span(n: int, **fields: Any) -> dict[str, Any]:
    root = f"span-{n:02d}"
    return {"id": root, "span_id": root, "root_span_id": root, "is_root": True, **fields}


def logs() -> list[dict[str, Any]]:
    """40 root spans (accuracy n/40: the first 20 score under 0.5), each with a child span."""
    rows = []
    for n in range(ROOTS):
        rows.append(
            span(
                n,
                input=INPUTS[n % len(INPUTS)],
                output={"answer": f"a{n}"} if n % 2 else f"answer {n}",
                metadata={"topic": TOPICS[n % 4], "n": n},
                scores={"accuracy": n / ROOTS},
                tags=["prod"] if n % 3 else [],
            )
        )
        child = f"span-{n:02d}-llm"
        rows.append(
            {
                "id": child,
                "span_id": child,
                "root_span_id": f"span-{n:02d}",
                "span_parents": [f"span-{n:02d}"],
            }
            | {"is_root": False, "input": "child", "scores": {"accuracy": 0.0}}
        )
    return rows


def upstream_project(emulator: Emulator) -> str:
    """Create PROJECT_NAME with `logs()` and an experiment; returns the project's id."""
    store = emulator.store
    project = store.create_project(PROJECT_NAME)
    store.insert("project_logs", project["id"], logs())
    experiment = store.create_experiment(project["id"], "baseline")
    store.insert("experiment", experiment["id"], [{"id": "ev-1", "input": "q", "scores": {"accuracy": 0.2}}])
    return str(project["id"])


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Emulator, str]]:
    """An emulator holding the upstream project, for the whole module; and the project's id."""
    with Emulator(seed="empty") as running:
        yield running, upstream_project(running)


@pytest.fixture(scope="module")
def synced(shared: tuple[Emulator, str], tmp_path_factory: pytest.TempPathFactory) -> WarehouseSettings:
    """A warehouse the shared emulator was synced into."""
    settings = warehouse_in(tmp_path_factory.mktemp("sql"))
    sync(shared[0], settings)
    return settings


@pytest.fixture
def upstream(shared: tuple[Emulator, str]) -> Iterator[Emulator]:
    emulator = shared[0]
    yield emulator
    emulator.faults.clear()


@pytest.fixture
def project_id(shared: tuple[Emulator, str]) -> str:
    return shared[1]


@pytest.fixture
def dataset(request: pytest.FixtureRequest) -> str:
    """A dataset name of this test's own."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-60:]


def pusher(emulator: Emulator, synced: WarehouseSettings, dataset: str, state_dir: Path) -> Push:
    """Push the result of a query over `synced` into PROJECT_NAME/`dataset`."""

    def run(sql: str, client: BraintrustClient | None = None, **options: Any) -> PushSummary:
        settings = {"project": PROJECT_NAME, "dataset": dataset, "state_dir": state_dir} | options
        if client is not None:
            return push(client, PushOptions(sql=sql, **settings), NullProgress(), synced)
        with fast_client(emulator) as own:
            return push(own, PushOptions(sql=sql, **settings), NullProgress(), synced)

    return run


@pytest.fixture
def push_sql(upstream: Emulator, synced: WarehouseSettings, dataset: str, tmp_path: Path) -> Push:
    return pusher(upstream, synced, dataset, tmp_path / "state")


def dataset_id(emulator: Emulator, name: str) -> str:
    (found,) = emulator.store.list_objects("dataset", ListQuery(project_name=PROJECT_NAME, name=name))
    return str(found["id"])


def inserts(emulator: Emulator, name: str) -> int:
    """Events inserted into dataset `name` (0 if it does not exist)."""
    found = emulator.store.list_objects("dataset", ListQuery(project_name=PROJECT_NAME, name=name))
    return sum(emulator.stats.rows_inserted[d["id"]] for d in found)


def upstream_writes(emulator: Emulator) -> dict[str, int]:
    """Requests other than GETs the emulator served, by kind (creates and inserts among them)."""
    return {
        kind: n for kind, n in emulator.stats.snapshot()["requests"].items() if not kind.startswith("GET")
    }


def live_rows(emulator: Emulator, name: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in emulator.store.live_rows("dataset", dataset_id(emulator, name))}


def records(rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """Rows of (id, input, expected, metadata, tags, origin) by id, JSON decoded, no tags as None."""

    def loads(text: str | None) -> Any:
        return None if text is None else orjson.loads(text)

    return {id_: (loads(i), loads(e), loads(m), tags or None, loads(o)) for id_, i, e, m, tags, o in rows}


def test_a_curated_dataset_equals_its_query_and_a_rerun_changes_nothing(
    upstream: Emulator,
    synced: WarehouseSettings,
    push_sql: Push,
    dataset: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spills = tmp_path / "tmp"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    first = push_sql(CURATION)
    assert (first.rows_read, first.rows_sent, first.origin, first.id_column) == (
        CURATED,
        CURATED,
        "project_logs",
        "id",
    )
    assert first.unmapped_columns == [] and first.warnings == []
    versions = {row_id: row["_xact_id"] for row_id, row in live_rows(upstream, dataset).items()}

    again = push_sql(CURATION)
    assert (again.already_complete, again.rows_read, again.rows_sent) == (True, CURATED, 0)
    assert inserts(upstream, dataset) == CURATED
    assert {row_id: row["_xact_id"] for row_id, row in live_rows(upstream, dataset).items()} == versions
    assert list(spills.iterdir()) == []  # each push removed its query's spill directory

    sync(upstream, synced)
    pushed = query(
        synced,
        "SELECT id, input, expected, metadata, tags, origin FROM dataset_records WHERE dataset_id = ?",
        [dataset_id(upstream, dataset)],
    )
    curated = query(
        synced,
        f"""
        SELECT id, input, expected, metadata, tags,
               json_object('object_type', 'project_logs', 'object_id', project_id, 'id', id,
                           '_xact_id', _xact_id::VARCHAR) AS origin
        FROM ({CURATION})
        """,
    )
    assert len(pushed) == CURATED
    assert records(pushed) == records(curated)


def test_origin_is_the_api_s_object_reference(
    upstream: Emulator, synced: WarehouseSettings, project_id: str, push_sql: Push, dataset: str
) -> None:
    push_sql(CURATION)
    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schemas = spec["components"]["schemas"]
    assert schemas["InsertDatasetEvent"]["properties"]["origin"] == {
        "$ref": "#/components/schemas/ObjectReferenceNullish"
    }
    reference = OAS30Validator(schemas["ObjectReferenceNullish"])
    versions = dict(query(synced, "SELECT id, _xact_id::VARCHAR FROM project_logs"))
    for row_id, row in live_rows(upstream, dataset).items():
        reference.validate(row["origin"])
        uuid.UUID(row["origin"]["object_id"])
        assert row["origin"] == {
            "object_type": "project_logs",
            "object_id": project_id,
            "id": row_id,
            "_xact_id": versions[row_id],
        }


def test_a_dataset_re_curated_from_its_records_keeps_their_origins_and_never_links_to_itself(
    upstream: Emulator, synced: WarehouseSettings, push_sql: Push, dataset: str, tmp_path: Path
) -> None:
    push_sql(CURATION)
    curated = dataset_id(upstream, dataset)
    by_hand = [{"id": f"by-hand-{n}", "input": f"typed {n}"} for n in range(2)]
    upstream.store.insert("dataset", curated, by_hand)
    lineage = {row_id: row.get("origin") for row_id, row in live_rows(upstream, dataset).items()}
    assert sum(origin is not None for origin in lineage.values()) == CURATED
    sync(upstream, synced)
    records = f"""
        SELECT id, dataset_id, input, expected, metadata, origin, ['reviewed'] AS tags
        FROM dataset_records WHERE dataset_id = '{curated}'
    """

    # A dry run, which asks the API nothing, finds the dataset in the warehouse's catalog tables.
    dry = push_sql(records, dry_run=True)
    assert (dry.origins_held, dry.origins_linked) == (CURATED, 0)
    in_place = push_sql(records)
    assert (in_place.rows_sent, in_place.origins_held, in_place.origins_linked) == (CURATED + 2, CURATED, 0)
    assert in_place.origin == "dataset"  # the kind of rows read, which no record links to here
    assert describe(in_place).endswith(f"; origins: {CURATED} kept from their rows, 2 none.")
    rows = live_rows(upstream, dataset)
    assert {row_id: row.get("origin") for row_id, row in rows.items()} == lineage
    assert all(row["tags"] == ["reviewed"] for row in rows.values())

    copied = pusher(upstream, synced, f"{dataset}-copy", tmp_path / "copy")(records)
    assert (copied.origins_held, copied.origins_linked) == (CURATED, 2)
    assert describe(copied).endswith(
        f"; origins: {CURATED} kept from their rows, 2 linked to their dataset rows."
    )
    copies = live_rows(upstream, f"{dataset}-copy")
    assert {row_id: row.get("origin") for row_id, row in copies.items()} == lineage | {
        row["id"]: {"object_type": "dataset", "object_id": curated, "id": row["id"]} for row in by_hand
    }


def test_ids_holding_the_text_of_a_surrogate_s_escape_go_back_as_the_api_has_them(
    upstream: Emulator, synced: WarehouseSettings, push_sql: Push, dataset: str, tmp_path: Path
) -> None:
    # The warehouse doubles the backslashes before such text (a lone half is kept as its escape's text):
    # pushed back as stored, a record was added beside the one re-curated, and its origin named no row.
    project = upstream.store.list_objects("project", ListQuery(name=PROJECT_NAME))[0]
    source = upstream.store.create_dataset(project["id"], f"{dataset}-src")
    ids = [r"C:\ud83d\file", r"two\\ud83d", "plain"]
    upstream.store.insert("dataset", source["id"], [{"id": row_id, "input": row_id} for row_id in ids])
    sync(upstream, synced)
    records = (
        f"SELECT id, dataset_id, input, 'edited' AS expected FROM dataset_records "
        f"WHERE dataset_id = '{source['id']}'"
    )
    pusher(upstream, synced, f"{dataset}-src", tmp_path / "in-place")(records)
    rows = live_rows(upstream, f"{dataset}-src")
    assert {row_id: row["expected"] for row_id, row in rows.items()} == dict.fromkeys(ids, "edited")
    push_sql(records)
    copies = live_rows(upstream, dataset)
    assert {row["origin"]["id"] for row in copies.values()} == set(ids)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, project_id, name AS input FROM experiments",  # a catalog table's ids
        # An aggregate keyed by a day, named `id`.
        "SELECT project_id, date_trunc('day', created)::VARCHAR AS id, count(*) AS input FROM project_logs "
        "GROUP BY ALL",
    ],
)
def test_columns_named_like_event_rows_that_are_not_link_no_record_to_a_span(
    upstream: Emulator, push_sql: Push, dataset: str, sql: str
) -> None:
    summary = push_sql(sql)
    assert (summary.origin, summary.origins_linked, summary.unmapped_columns) == (None, 0, ["project_id"])
    (warning,) = summary.warnings
    assert warning.startswith("the result's project_id and id are not those of project_logs rows (")
    assert all(row.get("origin") is None for row in live_rows(upstream, dataset).values())


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        (
            '\'{"object_type": "span", "object_id": "p", "id": "x"}\'',
            "an origin's object_type is one of dataset, experiment, function, project_logs, prompt, "
            "prompt_session, found 'span'",
        ),
        ('\'{"object_type": "dataset", "id": "x"}\'', "an origin's object_id is text, found None"),
        ("'[1]'", "an origin is an object, found [1]"),
        ("to_json(7)", "an origin is an object, found 7"),
        # The API's `ObjectReference.object_id` is a UUID; `created` and `_xact_id` text.
        (
            "{'object_type': 'dataset', 'object_id': 'x', 'id': 'y'}",
            "an origin's object_id is its object's UUID, found 'x'",
        ),
        (
            "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, 'created': 5}",
            "an origin's created is a time, found 5",
        ),
        (
            "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, '_xact_id': -1}",
            "an origin's _xact_id is a 64-bit unsigned whole number, found -1",
        ),
        # Other scripts' digits, which `int` reads, and a version beyond 64 bits.
        (
            "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, '_xact_id': '١٢'}",
            "an origin's _xact_id is a 64-bit unsigned whole number, found '١٢'",
        ),
        (
            "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, "
            "'_xact_id': '18446744073709551616'}",
            "an origin's _xact_id is a 64-bit unsigned whole number, found '18446744073709551616'",
        ),
        # A DECIMAL's value was shown as `Decimal('1.5')`; JSON's integers beyond 64 bits so too.
        (
            "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, "
            "'_xact_id': 1.5::DECIMAL(4, 1)}",
            "an origin's _xact_id is a 64-bit unsigned whole number, found 1.5",
        ),
        (
            "json_object('object_type', 'project_logs', 'object_id', project_id, 'id', id, '_xact_id', "
            "'18446744073709551616'::JSON)",
            "an origin's _xact_id is a 64-bit unsigned whole number, found 18446744073709551616",
        ),
    ],
)
def test_an_origin_column_that_holds_no_reference_is_a_bad_row(
    upstream: Emulator, push_sql: Push, dataset: str, origin: str, reason: str
) -> None:
    with pytest.raises(PushError, match=f'query result row 1, column "origin": {re.escape(reason)}'):
        push_sql(f"SELECT id, input, {origin} AS origin FROM project_logs ORDER BY id LIMIT 2")
    assert inserts(upstream, dataset) == 0


def test_an_origin_built_from_a_table_s_columns_goes_as_the_api_s_reference(
    synced: WarehouseSettings, upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    # The tables hold `_xact_id` as UBIGINT: it went as a JSON number beyond 2**53, which readers round.
    # `created` is a TIMESTAMPTZ: sent as ISO 8601 text.
    origin = (
        "{'object_type': 'project_logs', 'object_id': project_id, 'id': id, '_xact_id': _xact_id, "
        "'created': created}"
    )
    summary = push_sql(f"SELECT 'c-' || id AS id, input, {origin} AS origin FROM project_logs LIMIT 3")
    assert summary.origins_held == 3
    versions = dict(query(synced, "SELECT id, _xact_id::VARCHAR FROM project_logs"))
    created = dict(query(synced, "SELECT id, created FROM project_logs"))
    origins = [row["origin"] for row in live_rows(upstream, dataset).values()]
    assert len(origins) == 3 and all(origin["_xact_id"] == versions[origin["id"]] for origin in origins)
    assert all(datetime.fromisoformat(origin["created"]) == created[origin["id"]] for origin in origins)


def test_rows_with_no_object_to_link_to_are_counted_as_having_no_origin(push_sql: Push, dataset: str) -> None:
    summary = push_sql(
        "SELECT id, if(id < 'span-02', NULL, project_id) AS project_id, input FROM project_logs WHERE is_root"
    )
    assert (summary.rows_sent, summary.origins_linked) == (ROOTS, ROOTS - 2)
    assert describe(summary).endswith(f"; origins: {ROOTS - 2} linked to their project_logs rows, 2 none.")
    none = push_sql(
        "SELECT id, NULL::VARCHAR AS project_id, input FROM project_logs WHERE is_root", force=True
    )
    assert describe(none).endswith("; no record has an origin.")


def test_json_map_list_and_struct_columns_arrive_as_values(
    upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    summary = push_sql(
        """
        SELECT id, input, scores, span_parents AS parents,
               {'topic': metadata->>'topic', 'n': (metadata->>'n')::INTEGER} AS facts,
               input->>'$' AS input_text, _xact_id, created
        FROM project_logs WHERE id LIKE 'span-0_-llm' OR id < 'span-05'
        """,
        input=("input", "scores", "parents", "facts"),
        expected=("input_text",),
        metadata=("created",),
    )
    # No object column (`project_id`), so no origin: `_xact_id` alone is not sent.
    assert (summary.rows_sent, summary.origin, summary.unmapped_columns) == (15, None, ["_xact_id"])
    rows = live_rows(upstream, dataset)
    assert [rows[f"span-0{n}"]["input"]["input"] for n in range(5)] == list(INPUTS)
    assert rows["span-03"]["input"] == {
        "input": [1, "two"],
        "scores": {"accuracy": 0.075},
        "parents": None,
        "facts": {"topic": "returns", "n": 3},
    }
    assert rows["span-03-llm"]["input"]["parents"] == ["span-03"]
    # A text column holding JSON is parsed, as a file's is; a JSON column's string stays a string.
    assert rows["span-01"]["expected"] == INPUTS[1]
    assert rows["span-04"]["expected"] == {"looks": "like JSON"}
    assert rows["span-04"]["input"]["input"] == INPUTS[4]
    assert rows["span-02"]["metadata"]["created"].endswith("+00:00")


def test_a_push_that_failed_midway_resumes_from_its_checkpoint(
    upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    upstream.faults.add(FaultRule(kind="status", status=500, route="/insert", after=2, times=None))
    with fast_client(upstream, max_attempts=2) as failing, pytest.raises(ServerUnavailable, match="rerun"):
        push_sql(CURATION, client=failing, batch_rows=5, concurrency=1)
    assert inserts(upstream, dataset) == 10
    upstream.faults.clear()
    # The query runs again, and DuckDB returns its rows in another order: the batches are the same.
    resumed = push_sql(CURATION, batch_rows=5, concurrency=1)
    assert (resumed.rows_resumed, resumed.rows_sent, resumed.batches) == (10, 10, 4)
    assert inserts(upstream, dataset) == CURATED
    assert len(live_rows(upstream, dataset)) == CURATED


def test_a_change_upstream_pushes_the_result_again_replacing_records_by_id(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    project_id = upstream_project(emulator)
    sync(emulator, warehouse)
    push_sql = pusher(emulator, warehouse, DATASET, tmp_path / "state")
    push_sql(CURATION)
    store = emulator.store
    store.insert("project_logs", project_id, [{"id": "span-03", "_is_merge": True, "output": "fixed"}])
    store.insert(
        "project_logs", project_id, [{"id": "span-30", "_is_merge": True, "scores": {"accuracy": 0.1}}]
    )
    sync(emulator, warehouse)
    again = push_sql(CURATION)
    assert (again.already_complete, again.rows_read, again.rows_sent) == (False, CURATED + 1, CURATED + 1)
    rows = live_rows(emulator, DATASET)
    (version,) = query(warehouse, "SELECT _xact_id::VARCHAR FROM project_logs WHERE id = 'span-03'")[0]
    assert (len(rows), rows["span-03"]["expected"], rows["span-03"]["origin"]["_xact_id"]) == (
        CURATED + 1,
        "fixed",
        version,
    )


def test_rows_sharing_an_id_send_the_last_in_sorted_order(
    upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    fanned_out = """
        SELECT l.id, l.input, t.label AS expected
        FROM project_logs l, (VALUES ('a'), ('c'), ('b')) t(label)
        WHERE l.is_root AND l.id < 'span-03'
    """
    summary = push_sql(fanned_out)
    assert (summary.rows_read, summary.rows_duplicate, summary.rows_sent) == (9, 6, 3)
    assert 'a later row has the same id, and the last one wins (e.g. id "span-00"' in summary.warnings[0]
    assert {row["expected"] for row in live_rows(upstream, dataset).values()} == {"c"}


def test_columns_never_sent_may_hold_values_with_no_json_form(
    upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    # As a file's: a column the mapping does not send is neither converted nor checked.
    summary = push_sql(
        "SELECT id, input, 'x'::BLOB AS raw, INTERVAL 3 DAY AS age, '12:00:00+02'::TIMETZ AS at, "
        "1::UHUGEINT AS big FROM project_logs ORDER BY id LIMIT 5"
    )
    assert (summary.rows_sent, sorted(summary.unmapped_columns)) == (5, ["age", "at", "big", "raw"])
    records = live_rows(upstream, dataset)
    assert len(records) == 5 and not any(
        {"raw", "age", "at", "big"} & record.keys() for record in records.values()
    )


def test_the_end_of_the_day_and_integer_ids_of_decimal_types_arrive_as_written(
    upstream: Emulator, push_sql: Push, dataset: str
) -> None:
    # `to_pylist` reads DuckDB's 24:00:00 as midnight; `sum` of integers is a HUGEINT.
    summary = push_sql(
        "SELECT sum(n)::HUGEINT AS id, TIME '24:00:00' AS input, "
        "[TIME '23:59:59.5', TIME '24:00:00'] AS expected FROM (SELECT 2 AS n UNION ALL SELECT 3) "
        "UNION ALL SELECT 6::DECIMAL(18, 0), TIME '00:00:00', [] "
        "UNION ALL SELECT '1180591620717411303424'::HUGEINT, TIME '12:00:00', []"
    )
    assert summary.rows_sent == 3
    assert {key: (row["input"], row["expected"]) for key, row in live_rows(upstream, dataset).items()} == {
        "5": ("24:00:00", ["23:59:59.500000", "24:00:00"]),
        "6": ("00:00:00", []),
        "1180591620717411303424": ("12:00:00", []),
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("'infinity'::TIMESTAMP", "<value out of range: 9223372036854775807>"),
        ("TIMESTAMP '10000-01-01'", "10000-01-01 00:00:00.000000"),
        ("DATE '-0044-03-15'", "-0044-03-15"),
        ("[DATE '10000-01-01']", "<a list<l: date32[day]> value>"),
    ],
)
def test_a_date_beyond_the_years_python_holds_is_a_bad_row(
    upstream: Emulator, push_sql: Push, dataset: str, tmp_path: Path, value: str, shown: str
) -> None:
    sql = f"SELECT id, CASE id WHEN 'b' THEN {value} END AS input FROM (VALUES ('a'), ('b')) AS rows(id)"
    with pytest.raises(PushError) as error:
        push_sql(sql)
    assert str(error.value) == (
        'query result row 2, column "input": a date or time outside the years 1 to 9999 has no JSON form '
        "here: send it as text"
    )
    summary = push_sql(sql, on_error="skip", rejects=tmp_path / "rejects.jsonl")
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    assert orjson.loads((tmp_path / "rejects.jsonl").read_bytes())["values"] == {"id": "b", "input": shown}


def test_an_empty_result_creates_nothing(upstream: Emulator, push_sql: Push, dataset: str) -> None:
    summary = push_sql("SELECT id, input FROM project_logs WHERE false")
    assert (summary.rows_read, summary.dataset_id) == (0, None)
    assert summary.warnings == ["the query result has no rows; there is nothing to push"]
    assert upstream.store.list_objects("dataset", ListQuery(name=dataset)) == []


def test_a_push_never_waits_for_a_sync_holding_the_object(
    synced: WarehouseSettings, project_id: str, push_sql: Push
) -> None:
    assert PROJECT.events is not None
    ref = ObjectRef(PROJECT.events, project_id, project_id, PROJECT_NAME)
    with open_destination(synced).lock(ref, 0):
        assert push_sql(CURATION).rows_sent == CURATED


# The command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("--sql", "SELEC 1"),
            1,
            'the query is not valid SQL: Parser Error: syntax error at or near "SELEC"',
        ),
        (
            ("--sql", "DELETE FROM project_logs"),
            1,
            "give exactly one SELECT statement: the tables are read-only here",
        ),
        # DuckDB's hints at what a misspelt query meant follow its first line: kept, on the same line.
        (
            ("--sql", "SELECT inputs FROM project_logs"),
            1,
            'the query failed: Binder Error: Referenced column "inputs" not found in FROM clause! '
            'Candidate bindings: "input", "span_attributes", "_pagination_key", "facets", "id"',
        ),
        (
            ("--sql", "SELECT input FROM project_log"),
            1,
            "the query failed: Catalog Error: Table with name project_log does not exist! "
            'Did you mean "project_logs"?',
        ),
        (
            ("--sql", "SELECT id, input FROM project_logs", "--input", "question"),
            1,
            'query result: no column "question" (from --input); the result has columns: "id", "input"',
        ),
        (
            ("--sql", "SELECT id, 'x'::BLOB AS input FROM project_logs"),
            1,
            'query result, column "input": type binary cannot be sent as JSON: '
            "binary data has no JSON form; cast it to string if it holds text",
        ),
        (
            ("--sql", "SELECT id, [('12:00:00+02'::TIMETZ)] AS input FROM project_logs"),
            1,
            'query result, column "input": type TIME WITH TIME ZONE[] cannot be sent faithfully (Arrow drops '
            "a time's offset, wraps a UHUGEINT beyond 2**127 and holds a BIGNUM or a VARIANT as "
            "DuckDB's bytes): cast it to VARCHAR in the query",
        ),
        (
            ("--sql", "SELECT id, 1::UHUGEINT AS input FROM project_logs"),
            1,
            'query result, column "input": type UHUGEINT cannot be sent faithfully (Arrow drops '
            "a time's offset, wraps a UHUGEINT beyond 2**127 and holds a BIGNUM or a VARIANT as "
            "DuckDB's bytes): cast it to VARCHAR in the query",
        ),
        (
            ("--sql", "SELECT 1 AS input, 2 AS input"),
            1,
            'query result: more than one column is named "input"; rename them so none is lost',
        ),
        (
            ("--sql", "SELECT id, input, [1, 2] AS tags FROM project_logs"),
            1,
            'query result row 1, column "tags": tags must be strings, found a number 1 at position 1',
        ),
        (
            ("--sql", "SELECT 'a' AS id, 'nan'::DOUBLE AS input"),
            1,
            'query result row 1, column "input": the value has no JSON form '
            "(nan is not a number JSON can hold)",
        ),
        (
            ("--sql", "SELECT id, 7 AS project_id, input FROM project_logs"),
            1,
            'query result row 1, column "project_id": an origin needs a text id here, found 7',
        ),
        (
            ("data.csv", "--sql", "SELECT 1 AS input"),
            2,
            "invalid setting: give one of FILE, --sql and --sql-file, not FILE and --sql",
        ),
        (
            ("--sql", "SELECT 1 AS input", "--format", "csv"),
            2,
            "invalid setting: --format: applies to a FILE, not to a query's result",
        ),
        (
            ("--sql", "SELECT 1 AS input", "--no-validate-first"),
            2,
            "invalid setting: --no-validate-first: applies to a FILE, not to a query's result",
        ),
        (("--sql-file", "missing.sql"), 2, "--sql-file missing.sql: No such file or directory"),
        # The reverse: a file's push read no warehouse, and took them without a word.
        (
            ("data.csv",),
            2,
            "invalid setting: --duckdb and --parquet: apply to a query's warehouse (--sql), not to a FILE",
        ),
        # Given, though empty: not taken for no query at all.
        (("--sql", ""), 1, "the query is empty (only blanks or comments): give one SELECT statement"),
    ],
)
def test_bad_queries_are_one_line_and_send_nothing(
    upstream: Emulator,
    synced: WarehouseSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    writes = upstream_writes(upstream)
    warehouse = cli_warehouse_args(synced)[:4]
    exit_code, out, err = run_cli(
        upstream, tmp_path, capsys, *args, "--project", "p", "--dataset", "d", *warehouse
    )
    assert (exit_code, out, err) == (code, "", f"bt-sync: error: {message}\n")
    assert upstream_writes(upstream) == writes


@pytest.mark.parametrize("shift", ["", "x", "xx", "xxx"])
def test_an_error_quoting_the_query_s_text_cut_inside_a_character_is_one_line(
    upstream: Emulator,
    synced: WarehouseSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shift: str,
) -> None:
    # DuckDB quotes the JSON it refused cut at a byte count: inside a 4-byte character for one of these
    # shifts, where its Python binding raised UnicodeDecodeError, a traceback.
    text = shift + "é\U0001f600a" * 40
    query = f"SELECT 'a' AS id, json_structure('{{\"a\":\"{text}') AS input"
    warehouse = cli_warehouse_args(synced)[:4]
    code, out, err = run_cli(
        upstream, tmp_path, capsys, "--sql", query, "--project", "p", "--dataset", "d", *warehouse
    )
    assert (code, out) == (1, "")
    assert err.startswith("bt-sync: error: the query failed: Invalid Input Error: Malformed JSON")
    assert err.count("\n") == 1


def test_nothing_synced_yet_says_what_to_do(
    upstream: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    exit_code, _, err = run_cli(
        upstream, tmp_path, capsys, "--sql", "SELECT 1 AS input", "--project", "p", "--dataset", "d",
        "--parquet", str(empty),
    )  # fmt: skip
    assert (exit_code, err) == (
        1,
        f"bt-sync: error: no synced tables at {empty} yet: run `bt-sync sync` first\n",
    )


def test_cli_dry_run_from_a_sql_file_needs_no_api_key(
    upstream: Emulator,
    synced: WarehouseSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    requests = upstream.stats.snapshot()["requests"]
    sql_file = tmp_path / "curate.sql"
    sql_file.write_text(f"-- low accuracy root spans\n{CURATION};\n")
    argv = ["bt-sync", "push", "--sql-file", str(sql_file), "--project", "p", "--dataset", "d"]
    monkeypatch.setattr(sys, "argv", [*argv, *cli_warehouse_args(synced), "--dry-run", "--json"])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    summary = orjson.loads(out)
    assert (exited.value.code, err) == (0, "")
    assert {k: summary[k] for k in ("file", "query", "rows_read", "batches", "origin", "dry_run")} == {
        "file": None,
        "query": sql_file.read_text(),
        "rows_read": CURATED,
        "batches": 1,
        "origin": "project_logs",
        "dry_run": True,
    }
    assert upstream.stats.snapshot()["requests"] == requests


def test_cli_push_then_rerun(
    upstream: Emulator,
    synced: WarehouseSettings,
    dataset: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = (
        "--sql",
        CURATION,
        "--project",
        PROJECT_NAME,
        "--dataset",
        dataset,
        *cli_warehouse_args(synced)[:4],
    )
    code, out, err = run_cli(upstream, tmp_path, capsys, *args)
    assert (code, err) == (0, "")
    assert out.startswith(f"pushed {CURATED} rows of the query result to dataset '{dataset}' in project")
    assert out.endswith("; each record's origin is its project_logs row.\n")
    code, out, _ = run_cli(upstream, tmp_path, capsys, *args)
    assert (code, out) == (
        0,
        f"the query result was already pushed to dataset '{dataset}' in project 'support-bot' "
        f"({CURATED} rows sent); "
        "nothing sent (use --force to send it again).\n",
    )
    assert inserts(upstream, dataset) == CURATED


def test_origins_count_the_records_that_land(
    upstream: Emulator, synced: WarehouseSettings, push_sql: Push, tmp_path: Path
) -> None:
    # Each row twice: the last of each id is sent. The origins counted every row mapped, 40 for 20 records.
    twice = push_sql(f"{CURATION} UNION ALL {CURATION}")
    assert (twice.rows_read, twice.rows_duplicate, twice.rows_sent) == (2 * CURATED, CURATED, CURATED)
    assert (twice.origins_linked, twice.origins_held) == (CURATED, 0)
    # Rows the API refuses land nowhere, nor do their origins.
    upstream.faults.add(FaultRule(kind="status", status=400, route="/insert", times=None))
    rejects = tmp_path / "rejects.jsonl"
    refused = pusher(upstream, synced, "refused", tmp_path / "refused")(
        CURATION, on_error="skip", rejects=rejects
    )
    assert (refused.rows_sent, refused.rows_skipped, refused.origins_linked) == (0, CURATED, 0)
