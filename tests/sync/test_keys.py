"""Object keys (`connector.sync.keys`): readable where names allow, unique always, and parsed back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from connector.sync.keys import object_key, object_keys, parse_key
from schemas.api import ObjectType

LOGS, EXPERIMENT = ObjectType.PROJECT_LOGS, ObjectType.EXPERIMENT


@dataclass(frozen=True)
class Obj:
    object_type: ObjectType
    object_id: str
    name: str


@pytest.mark.parametrize(
    ("object_type", "name", "key"),
    [
        (LOGS, "support-bot", "support-bot"),
        (EXPERIMENT, "support-bot/baseline", "support-bot/baseline"),
        (EXPERIMENT, "support bot/run #3 (gpt-4o, t=0.2)", "support bot/run #3 (gpt-4o, t=0.2)"),
        # A `/` inside a name would make `a/b` + `c` and `a` + `b/c` read alike.
        (LOGS, "team/bot", "team/bot~id1"),
        (EXPERIMENT, "a/b/c", "a/b/c~id1"),
        (EXPERIMENT, "bot/", "bot/~id1"),
        # What Dagster forbids in a partition key gets a stand-in, and the id.
        (EXPERIMENT, "bot/wait...done", "bot/wait…done~id1"),
        (EXPERIMENT, "bot/line\nbreak\t", "bot/line break ~id1"),
        (EXPERIMENT, "bot/approx~1", "bot/approx~1~id1"),
    ],
)
def test_a_key_is_the_name_unless_the_name_is_ambiguous(object_type: ObjectType, name: str, key: str) -> None:
    assert object_key(object_type, name, "id1") == key


def test_equal_names_get_their_ids_and_other_keys_stay_plain() -> None:
    objects = [
        Obj(LOGS, "p1", "support-bot"),
        Obj(LOGS, "p2", "support-bot"),
        Obj(LOGS, "p3", "triage"),
        Obj(EXPERIMENT, "e1", "support-bot"),
    ]
    assert object_keys(objects) == {
        (LOGS, "p1"): "support-bot~p1",
        (LOGS, "p2"): "support-bot~p2",
        (LOGS, "p3"): "triage",
        (EXPERIMENT, "e1"): "support-bot~e1",
    }


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("bot/\u00e9", "bot/e\u0301"),  # é composed, and as `e` with its accent
        ("bot/x y", "bot/x\u00a0y"),  # a space, and a no-break space
        ("bot/xy", "bot/x\u200by"),  # a zero-width space between
    ],
)
def test_names_that_read_alike_get_their_ids(one: str, other: str) -> None:
    # Two partitions both showed as `bot/é` in Dagster's list, its run tags and `status`.
    objects = [Obj(EXPERIMENT, "e1", one), Obj(EXPERIMENT, "e2", other), Obj(EXPERIMENT, "e3", "bot/z")]
    assert object_keys(objects) == {
        (EXPERIMENT, "e1"): f"{one}~e1",
        (EXPERIMENT, "e2"): f"{other}~e2",
        (EXPERIMENT, "e3"): "bot/z",
    }


def test_keys_parse_back_to_names_or_ids() -> None:
    assert parse_key(EXPERIMENT, "support-bot/baseline").names == ("support-bot", "baseline")
    assert parse_key(EXPERIMENT, "support-bot/baseline").object_id is None
    assert parse_key(LOGS, "support-bot").names == ("support-bot",)
    assert parse_key(EXPERIMENT, "a/b/c~0f3e-9").object_id == "0f3e-9"
    assert parse_key(EXPERIMENT, "bot/approx~1~id1").object_id == "id1"
