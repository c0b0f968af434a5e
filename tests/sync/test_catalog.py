"""The project catalog (prompts, functions, score and tag definitions) as tables, and the README's queries."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from connector.config import WarehouseSettings
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import AuthError, MalformedResponse, NotFoundError
from tests.helpers import query, sync

README = Path(__file__).resolve().parents[2] / "README.md"
# Emulator kind -> table, for the kinds that have no rows to page through.
DEFINITIONS = {
    "prompt": "prompts",
    "function": "functions",
    "project_score": "project_scores",
    "project_tag": "project_tags",
}


def listed(emulator: Emulator, kind: str) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in emulator.store.list_objects(kind, ListQuery())}  # type: ignore[arg-type]


def test_objects_selects_the_catalog_kinds_alone(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    summary = sync(demo_emulator, warehouse, kinds=frozenset({"prompts", "project_tags"}))
    assert summary.objects == []  # no logs, experiments or datasets read
    assert summary.catalog["prompts"] == len(listed(demo_emulator, "prompt")) > 0
    assert summary.catalog["project_tags"] == len(listed(demo_emulator, "project_tag")) > 0
    assert query(warehouse, "SELECT count(*) FROM functions") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM project_logs") == [(0,)]


def test_each_definition_has_its_typed_fields_and_the_whole_object(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    prompts = listed(demo_emulator, "prompt")
    for row_id, name, slug, version, prompt_data, raw in query(
        warehouse, "SELECT id, name, slug, _xact_id, prompt_data, _raw FROM prompts"
    ):
        api = prompts[row_id]
        assert (name, slug, version) == (api["name"], api["slug"], int(api["_xact_id"]))
        assert json.loads(prompt_data) == api["prompt_data"] and json.loads(raw) == api
    functions = listed(demo_emulator, "function")
    scorers = query(warehouse, "SELECT id, function_data FROM functions WHERE function_type = 'scorer'")
    assert scorers and all(json.loads(data) == functions[i]["function_data"] for i, data in scorers)
    scores = listed(demo_emulator, "project_score")
    for row_id, score_type, categories in query(
        warehouse, "SELECT id, score_type, categories FROM project_scores"
    ):
        assert score_type == scores[row_id]["score_type"]
        assert (json.loads(categories) if categories else None) == scores[row_id].get("categories")
    tags = listed(demo_emulator, "project_tag")
    assert dict(query(warehouse, "SELECT id, color FROM project_tags")) == {
        i: t.get("color") for i, t in tags.items()
    }


def test_raw_holds_each_listed_object_as_the_api_listed_it(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    for kind in ("project", "experiment", "dataset", *DEFINITIONS):
        api = listed(demo_emulator, kind)
        table = DEFINITIONS.get(kind, f"{kind}s")
        raws = {row_id: json.loads(raw) for row_id, raw in query(warehouse, f"SELECT id, _raw FROM {table}")}
        assert raws == api, table  # timestamps too, as their text: "….391Z", not "….391000Z"


def test_a_definition_deleted_upstream_leaves_its_table_at_the_next_sync(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    for kind, table in DEFINITIONS.items():
        gone = next(iter(listed(demo_emulator, kind)))
        demo_emulator.store.delete(kind, gone)  # type: ignore[arg-type]
        sync(demo_emulator, warehouse, kinds=frozenset({table}))
        ids = {row_id for (row_id,) in query(warehouse, f"SELECT id FROM {table}")}
        assert ids == set(listed(demo_emulator, kind)) and gone not in ids, table


def test_a_sync_of_one_project_keeps_the_other_projects_definitions(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    other = demo_emulator.store.create_project("other-team")
    demo_emulator.store.create("project_tag", {"project_id": other["id"], "name": "urgent"})
    sync(demo_emulator, warehouse)
    first = query(warehouse, "SELECT id, name FROM project_tags ORDER BY id")
    sync(demo_emulator, warehouse, projects=("other-team",))
    assert query(warehouse, "SELECT id, name FROM project_tags ORDER BY id") == first
    assert ("urgent",) in query(warehouse, "SELECT name FROM project_tags")


def test_a_sync_of_one_project_refreshes_every_listed_project_s_name(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    store = demo_emulator.store
    first, second = (store.create_project(name)["id"] for name in ("alpha", "beta"))
    sync(demo_emulator, warehouse)
    gone = store.create_project("gone")["id"]
    sync(demo_emulator, warehouse, projects=("gone",))
    store.delete("project", gone)
    # Names swapped upstream: refreshing only the selected project's row showed "alpha" twice.
    store.patch("project", first, {"name": "swap"})
    store.patch("project", second, {"name": "alpha"})
    store.patch("project", first, {"name": "beta"})
    sync(demo_emulator, warehouse, projects=("alpha",))
    names = dict(query(warehouse, "SELECT id, name FROM projects"))
    assert (names[first], names[second]) == ("beta", "alpha")
    assert len(set(names.values())) == len(names)
    # A project no longer listed keeps its row until a sync of every project.
    assert names[gone] == "gone"
    sync(demo_emulator, warehouse)
    assert gone not in dict(query(warehouse, "SELECT id, name FROM projects"))


def test_the_readme_queries_run_on_the_demo_warehouse(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    # The example queries over the tables (the Parquet section's read plain files instead).
    tables = README.read_text().split("\n## Tables\n", 1)[1].split("\n### Parquet", 1)[0]
    code = "\n".join(
        line
        for block in re.findall(r"```sql\n(.*?)```", tables, re.S)
        for line in block.splitlines()
        if not line.lstrip().startswith("--")
    )
    queries = [q.strip() for q in code.split(";") if q.strip()]
    assert len(queries) >= 4
    for sql in queries:
        assert query(warehouse, sql), sql
    by_prompt_version = next(q for q in queries if "$.prompt.version" in q)
    rows = query(warehouse, by_prompt_version)
    # The demo ran two versions of one prompt: the second scores higher.
    assert len(rows) == 2 and rows[0][0] == rows[1][0] and rows[0][1] != rows[1][1]
    assert rows[1][2] > rows[0][2]


def test_an_object_listed_with_fields_of_unexpected_types_is_synced_and_kept_as_listed(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = emulator.store
    healthy = store.create_project("healthy")["id"]
    store.insert("project_logs", healthy, [{"id": "l1", "input": 1}])
    odd = store.create_experiment(store.create_project("other")["id"], "odd")["id"]
    store.insert("experiment", odd, [{"id": "e1", "input": 2}])
    drifted = {"description": {"text": "rich"}, "tags": "t", "metadata": [1], "created": 5}
    view = store.catalog.view

    def drifting(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        # An API whose fields drift from the spec: one experiment's, none that bt-sync reads.
        shown = view(kind, obj)  # type: ignore[arg-type]
        if shown["id"] != odd:
            return shown
        del shown["public"]  # which the spec requires
        return shown | drifted

    monkeypatch.setattr(store.catalog, "view", drifting)
    # One such object stopped the whole sync: "GET /v1/experiment returned a response bt-sync cannot
    # read (description: Input should be a valid string)".
    summary = sync(emulator, warehouse)
    assert [o.status for o in summary.objects] == ["synced"] * 3  # both projects' logs, the experiment
    counts = "SELECT (SELECT count(*) FROM project_logs), (SELECT count(*) FROM experiment_events)"
    assert query(warehouse, counts) == [(1, 1)]
    ((raw, description, created),) = query(
        warehouse, "SELECT _raw, description, created FROM experiments WHERE id = ?", [odd]
    )
    assert {key: json.loads(raw)[key] for key in drifted} == drifted and "public" not in json.loads(raw)
    assert (description, created) == ('{"text":"rich"}', None)


def test_an_object_listed_without_a_field_bt_sync_reads_is_named_in_the_error(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = emulator.store
    odd = store.create_experiment(store.create_project("p")["id"], "odd")["id"]
    view = store.catalog.view

    def nameless(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        shown = view(kind, obj)  # type: ignore[arg-type]
        return shown | {"name": 5} if shown["id"] == odd else shown

    monkeypatch.setattr(store.catalog, "view", nameless)
    with pytest.raises(MalformedResponse) as error:
        sync(emulator, warehouse)
    # Which of the listed objects breaks the contract, for the API's owners to find it.
    assert str(error.value).startswith(
        f"GET /v1/experiment returned a response bt-sync cannot read (name: Input should be a valid string, "
        f"of the object with id {odd}); "
    )


@pytest.mark.parametrize(
    ("options", "remedy"),
    [
        (
            {},
            "grant it, or give the command --objects "
            "logs,experiments,datasets,prompts,project_scores,project_tags to sync the other kinds",
        ),
        # Of the kinds asked for; the command's other flags (its projects, its warehouse) kept.
        (
            {"kinds": frozenset({"experiments", "functions"}), "projects": ("rag-search",)},
            "grant it, or give the command --objects experiments to sync the other kinds",
        ),
        ({"kinds": frozenset({"functions"})}, "grant it"),
    ],
)
def test_a_kind_the_key_may_not_list_is_named_with_the_kinds_to_sync_without_it(
    demo_emulator: Emulator, warehouse: WarehouseSettings, options: dict[str, Any], remedy: str
) -> None:
    # A key that may read everything but functions: the message said to check the key (and the URL).
    demo_emulator.faults.add(
        FaultRule(kind="status", status=403, route="^/v1/function", body='{"error": "no"}', times=None)
    )
    with pytest.raises(AuthError) as error:
        sync(demo_emulator, warehouse, **options)
    assert re.fullmatch(
        r"Braintrust refused this API key the listing of functions in project '[^']+' \(HTTP 403 on GET "
        r'/v1/function: \{"error": "no"\}\), though it listed the projects: it may lack only the permission '
        rf"to read functions; {re.escape(remedy)}",
        str(error.value),
    )


def test_objects_listed_under_projects_they_do_not_belong_to_are_left_out_there(
    demo_emulator: Emulator,
    warehouse: WarehouseSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An API ignoring the listing's `project_id` filter: every experiment and dataset was stored, counted
    # and synced once per project, and a sync of one project failed with a traceback (a KeyError).
    store = demo_emulator.store
    truth = {kind: len(listed(demo_emulator, kind)) for kind in ("experiment", "dataset")}
    unfiltered = store.list_objects
    monkeypatch.setattr(
        store,
        "list_objects",
        lambda kind, query: unfiltered(kind, dataclasses.replace(query, project_id=None)),
    )
    summary = sync(demo_emulator, warehouse)
    assert (summary.catalog["experiments"], summary.catalog["datasets"]) == (
        truth["experiment"],
        truth["dataset"],
    )
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM experiments") == [
        (truth["experiment"],) * 2
    ]
    assert len(summary.objects) == len({o.object_id for o in summary.objects})
    assert "under projects they do not belong to" in caplog.text
    (project, *_) = store.list_objects("project", ListQuery())
    narrowed = sync(demo_emulator, warehouse, projects=[project["name"]])
    assert not narrowed.failures


def test_a_project_whose_listing_answers_404_is_named(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # A project deleted between the listing of the projects and of their experiments: "GET /v1/experiment:
    # not found", of no project named.
    demo_emulator.faults.add(FaultRule(kind="status", status=404, route="^/v1/experiment$", times=None))
    with pytest.raises(NotFoundError) as error:
        sync(demo_emulator, warehouse)
    names = [project["name"] for project in demo_emulator.store.list_objects("project", ListQuery())]
    assert re.search(
        r"\(listing the experiments of project '(.+)': deleted since the projects were listed\?\)$",
        str(error.value),
    )
    assert any(f"project {name!r}:" in str(error.value) for name in names)
