"""Reading one object: the version probe, and the pages a read fetches and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.api.client import BraintrustClient
from connector.destinations.base import ObjectRef
from connector.emulator import Emulator, FaultRule
from connector.errors import MalformedResponse, PaginationError
from connector.sync.extract import newest_version
from schemas.kinds import PROJECT
from tests.helpers import fast_client


@pytest.fixture
def client(emulator: Emulator) -> Iterator[BraintrustClient]:
    with fast_client(emulator) as running:
        yield running


def logs_of(project: dict[str, Any]) -> ObjectRef:
    assert PROJECT.events is not None
    return ObjectRef(PROJECT.events, project["id"], project["id"], project["name"])


def test_the_version_probe_reads_one_trace_and_returns_its_version(
    emulator: Emulator, client: BraintrustClient
) -> None:
    project = emulator.store.create_project("probe")
    for number in range(5):
        emulator.store.insert("project_logs", project["id"], [{"id": f"r{number}", "input": number}])
    newest = max(int(row["_xact_id"]) for row in emulator.store.live_rows("project_logs", project["id"]))
    assert newest_version(client, logs_of(project)) == newest
    # One trace of one span: the probe costs one row whatever the object's size.
    assert emulator.stats.rows_served[project["id"]] == 1


def test_the_version_probe_of_an_empty_object_is_none(emulator: Emulator, client: BraintrustClient) -> None:
    project = emulator.store.create_project("empty")
    assert newest_version(client, logs_of(project)) is None


def test_the_version_probe_follows_empty_pages_that_carry_a_cursor(
    emulator: Emulator, client: BraintrustClient
) -> None:
    project = emulator.store.create_project("behind-empty-pages")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    emulator.faults.add(FaultRule(kind="empty_page", route=f"{project['id']}/fetch", times=3))
    (row,) = emulator.store.live_rows("project_logs", project["id"])
    assert newest_version(client, logs_of(project)) == int(row["_xact_id"])


def test_the_version_probe_stops_after_too_many_empty_pages(
    emulator: Emulator, client: BraintrustClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.sync.extract.MAX_EMPTY_PAGES", 3)
    project = emulator.store.create_project("only-empty-pages")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    emulator.faults.add(FaultRule(kind="empty_page", route=f"{project['id']}/fetch", times=None))
    with pytest.raises(PaginationError, match="3 empty pages in a row"):
        newest_version(client, logs_of(project))
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"events": [}', "the page is not valid JSON"),
        ('{"events": [{"_xact_id": "5"}], "cursor": null}', "id"),
    ],
)
def test_a_malformed_probe_names_the_object_and_the_reason(
    emulator: Emulator, client: BraintrustClient, body: str, reason: str
) -> None:
    project = emulator.store.create_project("malformed")
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=body, times=None))
    with pytest.raises(MalformedResponse) as raised:
        newest_version(client, logs_of(project))
    message = str(raised.value)
    assert f"project_logs 'malformed' ({project['id']}) is malformed" in message
    assert reason in message and "nothing was committed" in message
