"""Prompts, functions, project scores and project tags in the emulator, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.emulator import Emulator, Kind, ListQuery

DEFINITION_KINDS: tuple[Kind, ...] = ("prompt", "function", "project_score", "project_tag")
CODE = {
    "type": "code",
    "data": {
        "type": "inline",
        "runtime_context": {"runtime": "python", "version": "3.12"},
        "code": "def handler(output, expected):\n    return 1.0\n",
    },
}
PROMPT_DATA = {
    "prompt": {"type": "chat", "messages": [{"role": "user", "content": "{{question}}"}]},
    "options": {"model": "gpt-4o", "params": {"temperature": 0.5, "max_tokens": 100}},
}


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=_auth(emulator.api_key), timeout=10) as client:
        yield client


@pytest.fixture
def project(http: httpx.Client) -> Any:
    return _ok(http.post("/v1/project", json={"name": "catalog"}))


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _body(kind: str, project_id: str, name: str, **fields: Any) -> dict[str, Any]:
    """A valid create body of `kind` (slugs follow names unless given)."""
    required: dict[str, dict[str, Any]] = {
        "prompt": {"slug": name, "prompt_data": PROMPT_DATA},
        "function": {"slug": name, "function_type": "scorer", "function_data": CODE},
        "project_score": {"score_type": "slider"},
        "project_tag": {"color": "#00ff00"},
    }
    return {"project_id": project_id, "name": name, **required[kind], **fields}


def _names(http: httpx.Client, kind: Kind, **params: Any) -> list[str]:
    return [obj["name"] for obj in _ok(http.get(f"/v1/{kind}", params=params))["objects"]]


@pytest.mark.parametrize("kind", DEFINITION_KINDS)
def test_create_get_list_delete(http: httpx.Client, project: Any, kind: Kind) -> None:
    created = _ok(http.post(f"/v1/{kind}", json=_body(kind, project["id"], "one")))

    assert created["project_id"] == project["id"]
    assert _ok(http.get(f"/v1/{kind}/{created['id']}")) == created
    assert _ok(http.get(f"/v1/{kind}", params={"project_id": project["id"]}))["objects"] == [created]
    assert _ok(http.delete(f"/v1/{kind}/{created['id']}")) == created
    assert http.get(f"/v1/{kind}/{created['id']}").status_code == 404
    assert http.delete(f"/v1/{kind}/{created['id']}").status_code == 404
    assert _names(http, kind, project_id=project["id"]) == []


@pytest.mark.parametrize("kind", DEFINITION_KINDS)
def test_list_pages_newest_first_within_a_project(http: httpx.Client, kind: Kind) -> None:
    mine, other = (_ok(http.post("/v1/project", json={"name": name})) for name in ("mine", "other"))
    for n in range(5):
        http.post(f"/v1/{kind}", json=_body(kind, mine["id"], f"obj-{n}"))
        http.post(f"/v1/{kind}", json=_body(kind, other["id"], f"other-{n}"))

    pages: list[list[str]] = []
    params: dict[str, Any] = {"project_id": mine["id"], "limit": 2}
    while objects := _ok(http.get(f"/v1/{kind}", params=params))["objects"]:
        pages.append([obj["name"] for obj in objects])
        params["starting_after"] = objects[-1]["id"]

    assert pages == [["obj-4", "obj-3"], ["obj-2", "obj-1"], ["obj-0"]]
    assert _names(http, kind, project_name="other", limit=1) == ["other-4"]
    assert _names(http, kind, **{f"{kind}_name": "obj-2"}) == ["obj-2"]
    assert len(_names(http, kind)) == 10


@pytest.mark.parametrize(
    ("kind", "key"),
    [("prompt", "slug"), ("function", "slug"), ("project_score", "name"), ("project_tag", "name")],
)
def test_a_taken_key_returns_the_existing_object_unmodified(
    http: httpx.Client, project: Any, kind: Kind, key: str
) -> None:
    first = http.post(f"/v1/{kind}", json=_body(kind, project["id"], "dup", description="first"))
    again = http.post(f"/v1/{kind}", json=_body(kind, project["id"], "dup", description="second"))
    elsewhere = _ok(http.post("/v1/project", json={"name": "elsewhere"}))
    there = _ok(http.post(f"/v1/{kind}", json=_body(kind, elsewhere["id"], "dup")))

    assert again.json() == first.json()
    assert again.json()["description"] == "first"
    assert (first.headers["x-bt-found-existing"], again.headers["x-bt-found-existing"]) == ("false", "true")
    assert there["id"] != first.json()["id"]
    if key == "slug":
        # Names need not be unique where slugs are the key.
        twin = _ok(http.post(f"/v1/{kind}", json=_body(kind, project["id"], "dup", slug="dup-2")))
        assert (twin["name"], twin["slug"]) == ("dup", "dup-2")


@pytest.mark.parametrize("kind", DEFINITION_KINDS)
def test_put_creates_or_replaces_by_key(http: httpx.Client, project: Any, kind: Kind) -> None:
    made = http.put(f"/v1/{kind}", json=_body(kind, project["id"], "put", description="made"))
    replaced = http.put(f"/v1/{kind}", json=_body(kind, project["id"], "put"))

    assert (made.headers["x-bt-found-existing"], replaced.headers["x-bt-found-existing"]) == ("false", "true")
    assert replaced.json()["id"] == made.json()["id"]
    assert replaced.json()["created"] == made.json()["created"]
    # Replaced by the body alone: what it leaves out goes back to its default.
    assert replaced.json()["description"] is None


def test_prompts_are_functions_with_a_prompt_body(http: httpx.Client, project: Any) -> None:
    prompt = _ok(http.post("/v1/prompt", json=_body("prompt", project["id"], "ask")))
    scorer = _ok(http.post("/v1/function", json=_body("function", project["id"], "score")))

    functions = {obj["slug"]: obj for obj in _ok(http.get("/v1/function"))["objects"]}
    assert functions.keys() == {"ask", "score"}
    assert functions["ask"]["function_data"] == {"type": "prompt"}
    assert {key: functions["ask"][key] for key in prompt} == prompt
    assert "function_data" not in prompt
    assert [obj["slug"] for obj in _ok(http.get("/v1/prompt"))["objects"]] == ["ask"]
    assert http.get(f"/v1/prompt/{scorer['id']}").status_code == 404
    # One slug space: a prompt cannot take a code function's slug, a function finds the prompt.
    taken = http.post("/v1/prompt", json=_body("prompt", project["id"], "x", slug="score"))
    assert (taken.status_code, "belongs to a function" in taken.text) == (400, True)
    assert (
        _ok(http.post("/v1/function", json=_body("function", project["id"], "y", slug="ask")))["id"]
        == prompt["id"]
    )


def test_every_write_is_a_new_version_read_back_by_version() -> None:
    start = 999_999_998  # the ids cross a digit boundary: versions must compare as numbers
    with (
        Emulator(xact_start=start) as emulator,
        httpx.Client(base_url=emulator.url, headers=_auth(emulator.api_key)) as http,
    ):
        project = _ok(http.post("/v1/project", json={"name": "versions"}))
        first = _ok(http.post("/v1/prompt", json=_body("prompt", project["id"], "ask")))
        patch = {"prompt_data": {"options": {"params": {"temperature": 0}}}, "function_type": "scorer"}
        second = _ok(http.patch(f"/v1/prompt/{first['id']}", json=patch))
        third = _ok(http.put("/v1/prompt", json=_body("prompt", project["id"], "ask", description="3")))
        later = _ok(http.post("/v1/function", json=_body("function", project["id"], "later")))

        assert [obj["_xact_id"] for obj in (first, second, third, later)] == [
            str(start),
            str(start + 1),
            str(start + 2),
            str(start + 3),
        ]
        # PATCH deep-merges object fields, and ignores what PatchPrompt lacks.
        assert second["prompt_data"]["options"] == {
            "model": "gpt-4o",
            "params": {"temperature": 0, "max_tokens": 100},
        }
        assert second["function_type"] is None
        path = f"/v1/prompt/{first['id']}"
        assert _ok(http.get(path, params={"version": str(start)})) == first
        assert _ok(http.get(path, params={"version": str(start + 1)})) == second
        assert _ok(http.get(path)) == third
        assert http.get(path, params={"version": str(start - 1)}).status_code == 404
        at_first = _ok(http.get("/v1/function", params={"version": str(start)}))["objects"]
        assert [obj["_xact_id"] for obj in at_first] == [str(start)]
        assert http.get(path, params={"version": "latest"}).status_code == 400
        assert http.get(path, params={"environment": "production"}).status_code == 400


def test_patch_rejects_a_taken_key_and_bad_shapes(http: httpx.Client, project: Any) -> None:
    one, _ = (
        _ok(http.post("/v1/prompt", json=_body("prompt", project["id"], name))) for name in ("one", "two")
    )
    score = _ok(http.post("/v1/project_score", json=_body("project_score", project["id"], "acc")))

    assert http.patch(f"/v1/prompt/{one['id']}", json={"slug": "two"}).status_code == 400
    assert http.patch(f"/v1/project_score/{score['id']}", json={"score_type": "banana"}).status_code == 400
    changed = _ok(
        http.patch(
            f"/v1/project_score/{score['id']}",
            json={"score_type": "categorical", "categories": [{"name": "good", "value": 1}], "name": None},
        )
    )
    assert (changed["name"], changed["score_type"], changed["categories"]) == (
        "acc",
        "categorical",
        [{"name": "good", "value": 1}],
    )


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("prompt", {"slug": None}, "slug is required"),
        ("prompt", {"function_type": "banana"}, "function_type must be one of"),
        ("prompt", {"prompt_data": "hello"}, "prompt_data must be an object"),
        ("function", {"function_data": None}, "function_data is required"),
        ("function", {"function_data": {"type": "banana"}}, "function_data must be"),
        ("function", {"origin": {"object_id": "x"}}, "origin must be"),
        ("project_score", {"score_type": None}, "score_type is required"),
        ("project_score", {"categories": [{"name": "x"}]}, "categories must be"),
        ("project_tag", {"color": 3}, "color must be a string"),
        ("project_tag", {"project_id": "00000000-0000-4000-8000-000000000000"}, "not an existing project"),
    ],
)
def test_bad_create_bodies_are_400_and_not_applied(
    emulator: Emulator, http: httpx.Client, project: Any, kind: Kind, change: dict[str, Any], message: str
) -> None:
    response = http.post(f"/v1/{kind}", json={**_body(kind, project["id"], "bad"), **change})

    assert response.status_code == 400
    assert message in response.text
    assert emulator.store.list_objects(kind, ListQuery()) == []


def test_project_score_type_filter(http: httpx.Client, project: Any) -> None:
    for name, score_type in (("a", "slider"), ("b", "categorical"), ("c", "weighted")):
        http.post(
            "/v1/project_score", json=_body("project_score", project["id"], name, score_type=score_type)
        )

    assert _names(http, "project_score", score_type="slider") == ["a"]
    assert _names(http, "project_score", score_type=["slider", "weighted"]) == ["c", "a"]


def test_deleting_a_project_deletes_its_definitions(http: httpx.Client, project: Any) -> None:
    kept = _ok(http.post("/v1/project", json={"name": "kept"}))
    made = {
        kind: _ok(http.post(f"/v1/{kind}", json=_body(kind, project["id"], "x"))) for kind in DEFINITION_KINDS
    }
    survivors = {
        kind: _ok(http.post(f"/v1/{kind}", json=_body(kind, kept["id"], "x"))) for kind in DEFINITION_KINDS
    }

    _ok(http.delete(f"/v1/project/{project['id']}"))

    for kind in DEFINITION_KINDS:
        assert http.get(f"/v1/{kind}/{made[kind]['id']}").status_code == 404
        assert _ok(http.get(f"/v1/{kind}"))["objects"] == [survivors[kind]]
    version = made["prompt"]["_xact_id"]
    assert http.get(f"/v1/prompt/{made['prompt']['id']}", params={"version": version}).status_code == 404


def test_read_only_key_cannot_write_definitions(emulator: Emulator, project: Any) -> None:
    headers = _auth(emulator.api_key + "-readonly")
    body = _body("project_tag", project["id"], "t")

    assert httpx.post(f"{emulator.url}/v1/project_tag", json=body, headers=headers).status_code == 403
    assert httpx.put(f"{emulator.url}/v1/project_tag", json=body, headers=headers).status_code == 403
    assert httpx.get(f"{emulator.url}/v1/project_tag", headers=headers).status_code == 200


def test_journal_replays_definitions_and_their_versions(tmp_path: Path) -> None:
    with (
        Emulator(state_dir=tmp_path) as first,
        httpx.Client(base_url=first.url, headers=_auth(first.api_key)) as http,
    ):
        project = _ok(http.post("/v1/project", json={"name": "kept"}))
        made = {
            kind: _ok(http.post(f"/v1/{kind}", json=_body(kind, project["id"], "x")))
            for kind in DEFINITION_KINDS
        }
        patched = _ok(http.patch(f"/v1/prompt/{made['prompt']['id']}", json={"description": "v2"}))
        _ok(http.delete(f"/v1/project_tag/{made['project_tag']['id']}"))
        before = {kind: first.store.list_objects(kind, ListQuery()) for kind in DEFINITION_KINDS}

    second = Emulator(state_dir=tmp_path, seed="demo")

    assert {kind: second.store.list_objects(kind, ListQuery()) for kind in DEFINITION_KINDS} == before
    assert before["project_tag"] == []
    version = int(made["prompt"]["_xact_id"])
    assert second.store.get("prompt", made["prompt"]["id"], version) == made["prompt"]
    newer = second.store.patch("prompt", made["prompt"]["id"], {"description": "v3"})
    assert int(newer["_xact_id"]) > int(patched["_xact_id"])


def test_demo_experiments_name_the_prompt_version_they_ran(demo_emulator: Emulator) -> None:
    store = demo_emulator.store
    support_bot = ListQuery(project_name="support-bot")
    (prompt,) = store.list_objects("prompt", ListQuery(slug="support-answer"))
    assert {score["name"] for score in store.list_objects("project_score", support_bot)} >= {
        "accuracy",
        "resolution",
    }
    assert {tag["name"] for tag in store.list_objects("project_tag", support_bot)} >= {"prod", "reviewed"}
    scorers = [f for f in store.list_objects("function", support_bot) if f["function_type"] == "scorer"]
    assert {f["function_data"]["type"] for f in scorers} == {"code", "prompt"}

    ran: dict[str, set[str]] = {}
    for experiment in store.list_objects("experiment", support_bot):
        llm_spans = [
            row
            for row in store.live_rows("experiment", experiment["id"])
            if row["span_attributes"]["type"] == "llm"
        ]
        assert llm_spans and all(row["metadata"]["prompt"]["id"] == prompt["id"] for row in llm_spans)
        ran[experiment["name"]] = {row["metadata"]["prompt"]["version"] for row in llm_spans}
    (baseline,), (v2,) = ran["baseline"], ran["prompt-v2"]
    assert int(baseline) < int(v2) == int(prompt["_xact_id"])
    first = store.get("prompt", prompt["id"], int(baseline))
    assert first["prompt_data"]["options"]["params"]["temperature"] == 0.7
