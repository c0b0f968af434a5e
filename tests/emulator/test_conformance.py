"""The emulator's real requests and responses validate against Braintrust's official OpenAPI spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from jsonschema import ValidationError, validators
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_schema_validator import OAS30ReadValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connector.emulator import KINDS, Emulator, FaultRule

# Braintrust's official OpenAPI spec, copied here so the check never depends on a sibling checkout.
SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "braintrust-openapi.yaml"
# Paths are matched against the spec's server URL, so requests are presented as sent there.
SPEC_SERVER = "https://api.braintrust.dev"


class _SpecRequest:
    """An httpx request as openapi-core's `Request` protocol wants it."""

    def __init__(self, request: httpx.Request) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )
        self.host_url = SPEC_SERVER
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")


class _SpecResponse:
    """An httpx response as openapi-core's `Response` protocol wants it."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(dict(response.headers))
        self.data = response.content


_OAS30_TYPE = OAS30ReadValidator.VALIDATORS["type"]


def _type_or_null(validator: Any, data_type: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if data_type != "null":
        yield from _OAS30_TYPE(validator, data_type, instance, schema)
    elif instance is not None:
        yield ValidationError(f"{instance!r} is not null")


# The spec mixes OpenAPI 3.1's `type: "null"` (e.g. in `ProjectScoreCategories`) into a 3.0
# document; the 3.0 validator only knows `nullable`, so its `type` keyword is taught "null".
# The spec has no readOnly/writeOnly fields, so one validator serves requests and responses.
_NULL_AWARE_OAS30 = validators.extend(OAS30ReadValidator, validators={"type": _type_or_null})


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    # The same mix makes the spec validator reject the document, so it is skipped.
    config = Config(
        spec_validator_cls=None, schema_validators_factory=SchemaValidatorsFactory(_NULL_AWARE_OAS30)
    )
    return OpenAPI.from_path(SPEC_PATH, config=config)


@pytest.fixture
def api(demo_emulator: Emulator, spec: OpenAPI) -> Iterator[_Api]:
    with httpx.Client(
        base_url=demo_emulator.url, headers={"Authorization": f"Bearer {demo_emulator.api_key}"}, timeout=10
    ) as http:
        yield _Api(http, spec)


class _Api:
    """Sends a request, then validates both it and the response against the spec."""

    def __init__(self, http: httpx.Client, spec: OpenAPI) -> None:
        self.http = http
        self.spec = spec

    def __call__(self, method: str, path: str, *, status: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        request = _SpecRequest(response.request)
        if response.status_code < 400:
            self.spec.validate_request(request)
        self.spec.validate_response(request, _SpecResponse(response))
        return response.json() if "json" in response.headers.get("content-type", "") else response.text


# What a create body of each kind needs beyond a project_id and a name (spec `Create*`).
_REQUIRED: dict[str, dict[str, Any]] = {
    "prompt": {"slug": "made"},
    "function": {
        "slug": "made",
        "function_data": {
            "type": "code",
            "data": {
                "type": "inline",
                "runtime_context": {"runtime": "python", "version": "3.12"},
                "code": "def handler(output, expected):\n    return 1.0\n",
            },
        },
    },
    "project_score": {"score_type": "slider"},
}
# Optional fields worth a round trip through the spec's shapes.
_OPTIONAL: dict[str, dict[str, Any]] = {
    "experiment": {"metadata": {"model": "m"}, "tags": ["t"]},
    "dataset": {"metadata": {"source": "test"}},
    "prompt": {
        "prompt_data": {
            "prompt": {"type": "chat", "messages": [{"role": "user", "content": "{{question}}"}]},
            "options": {"model": "gpt-4o", "params": {"temperature": 0.5}},
        },
        "function_type": "llm",
        "tags": ["t"],
    },
    "function": {
        "function_type": "scorer",
        "function_schema": {"parameters": {"type": "object"}, "returns": {"type": "number"}},
        "origin": {"object_type": "project", "object_id": "4a6c2a52-1c4f-4b7b-9d7e-2a1d2f2f3c3d"},
    },
    "project_score": {"config": {"multi_select": False, "destination": None}},
    "project_tag": {"color": "#ff0000"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_catalog_endpoints(api: _Api, kind: str) -> None:
    project = api("POST", "/v1/project", json={"name": f"conformance-{kind}"})
    scope = {} if kind == "project" else {"project_id": project["id"]}
    minimal = {**scope, "name": "made", **_REQUIRED.get(kind, {})}
    created = api(
        "POST", f"/v1/{kind}", json={**minimal, "description": "by the test", **_OPTIONAL.get(kind, {})}
    )
    assert api("POST", f"/v1/{kind}", json=minimal) == created

    listing = api("GET", f"/v1/{kind}", params={"limit": 2})
    assert len(listing["objects"]) <= 2
    api("GET", f"/v1/{kind}", params={f"{kind}_name": "made", "ids": [created["id"]]})
    api("GET", f"/v1/{kind}", params={"starting_after": listing["objects"][0]["id"]})
    api("GET", f"/v1/{kind}/{created['id']}")
    patched = api("PATCH", f"/v1/{kind}/{created['id']}", json={"description": "patched"})
    assert patched["description"] == "patched"
    api("DELETE", f"/v1/{kind}/{created['id']}")


@pytest.mark.parametrize("kind", ["prompt", "function", "project_score", "project_tag"])
def test_project_definitions_filter_replace_and_page(api: _Api, kind: str) -> None:
    project = api("POST", "/v1/project", json={"name": f"definitions-{kind}"})
    body = {"project_id": project["id"], "name": "made", **_REQUIRED.get(kind, {}), **_OPTIONAL.get(kind, {})}
    created = api("POST", f"/v1/{kind}", json=body)

    replaced = api("PUT", f"/v1/{kind}", json={**body, "description": "replaced"})
    assert (replaced["id"], replaced["description"]) == (created["id"], "replaced")
    scoped = {"project_id": project["id"], "project_name": project["name"], "org_name": "emulator-org"}
    (listed,) = api("GET", f"/v1/{kind}", params=scoped)["objects"]
    assert listed == replaced
    first = api("GET", f"/v1/{kind}", params={"limit": 1})["objects"][0]
    api("GET", f"/v1/{kind}", params={"limit": 1, "starting_after": first["id"]})
    api("GET", f"/v1/{kind}", params={"ending_before": first["id"]})


@pytest.mark.parametrize("kind", ["prompt", "function"])
def test_versioned_reads(api: _Api, kind: str) -> None:
    project = api("POST", "/v1/project", json={"name": f"versions-{kind}"})
    body = {"project_id": project["id"], "name": "made", **_REQUIRED[kind], **_OPTIONAL[kind]}
    first = api("POST", f"/v1/{kind}", json=body)
    patch = {"name": "renamed", "tags": ["v2"], "prompt_data": {"options": {"params": {"temperature": 0}}}}
    second = api("PATCH", f"/v1/{kind}/{first['id']}", json=patch)
    assert int(second["_xact_id"]) > int(first["_xact_id"])

    assert api("GET", f"/v1/{kind}/{first['id']}", params={"version": first["_xact_id"]}) == first
    old = api(
        "GET",
        f"/v1/{kind}",
        params={"slug": "made", "project_id": project["id"], "version": first["_xact_id"]},
    )
    assert old["objects"] == [first]


def test_project_score_types(api: _Api) -> None:
    project = api("POST", "/v1/project", json={"name": "score-types"})
    scope = {"project_id": project["id"]}
    bodies: list[dict[str, Any]] = [
        {"name": "resolution", "score_type": "categorical", "categories": [{"name": "yes", "value": 1}]},
        {"name": "overall", "score_type": "weighted", "categories": {"accuracy": 0.5, "relevance": 0.5}},
        {"name": "floor", "score_type": "minimum", "categories": ["accuracy", "relevance"]},
    ]
    for body in bodies:
        api("POST", "/v1/project_score", json={**scope, **body})

    weighted = api("GET", "/v1/project_score", params={**scope, "score_type": "weighted"})["objects"]
    several = api("GET", "/v1/project_score", params={**scope, "score_type": ["categorical", "minimum"]})
    assert [score["name"] for score in weighted] == ["overall"]
    assert [score["name"] for score in several["objects"]] == ["floor", "resolution"]


def test_demo_definitions(api: _Api) -> None:
    for kind in ("prompt", "function", "project_score", "project_tag"):
        assert api("GET", f"/v1/{kind}", params={"project_name": "support-bot"})["objects"]


@pytest.mark.parametrize("object_type", ["project_logs", "experiment", "dataset"])
def test_insert_and_fetch_every_page(api: _Api, demo_emulator: Emulator, object_type: str) -> None:
    owner = {"project_logs": "project", "experiment": "experiment", "dataset": "dataset"}[object_type]
    object_id = api("GET", f"/v1/{owner}")["objects"][0]["id"]
    path = f"/v1/{object_type}/{object_id}"
    event: dict[str, Any] = {"input": {"q": "conformance"}, "metadata": {"source": "test"}, "tags": ["t"]}
    if object_type == "dataset":
        event["expected"] = "answer"
    else:
        event |= {"output": "answer", "scores": {"accuracy": 1}, "metrics": {"start": 1.0, "end": 2.5}}
    inserted = api(
        "POST", f"{path}/insert", json={"events": [event, {**event, "_is_merge": True, "id": "merge"}]}
    )
    assert len(inserted["row_ids"]) == 2

    pages, cursor = 0, None
    while True:
        body = {"limit": 10} if cursor is None else {"limit": 10, "cursor": cursor}
        page = api("POST", f"{path}/fetch", json=body)
        pages += 1
        cursor = page.get("cursor")
        if not page["events"]:
            break
    assert pages >= 2 and cursor is None

    newest = api("GET", f"{path}/fetch", params={"limit": 3})["events"]
    last = newest[-1]
    api(
        "GET",
        f"{path}/fetch",
        params={"limit": 3, "max_xact_id": last["_xact_id"], "max_root_span_id": last["root_span_id"]},
    )
    api("GET", f"{path}/fetch", params={"version": last["_xact_id"]})


def test_summaries(api: _Api) -> None:
    dataset_id = api("GET", "/v1/dataset")["objects"][0]["id"]
    experiment_id = api("GET", "/v1/experiment")["objects"][0]["id"]

    assert api("GET", f"/v1/dataset/{dataset_id}/summarize", params={"summarize_data": "true"})[
        "data_summary"
    ]
    api("GET", f"/v1/dataset/{dataset_id}/summarize")
    assert api("GET", f"/v1/experiment/{experiment_id}/summarize", params={"summarize_scores": "true"})[
        "scores"
    ]
    api("GET", f"/v1/experiment/{experiment_id}/summarize")


def test_error_responses(api: _Api, demo_emulator: Emulator) -> None:
    api("GET", "/v1/project", status=401, headers={"Authorization": "Bearer wrong"})
    api("POST", "/v1/project", status=400, json={"name": ""})
    demo_emulator.faults.add(FaultRule(kind="status", status=429, retry_after="1", route="^/v1/project$"))
    api("GET", "/v1/project", status=429)
    demo_emulator.faults.add(FaultRule(kind="status", status=500, route="^/v1/project$"))
    api("GET", "/v1/project", status=500)


@pytest.mark.parametrize("object_type", ["project_logs", "experiment", "dataset"])
def test_feedback(api: _Api, object_type: str) -> None:
    owner = {"project_logs": "project", "experiment": "experiment", "dataset": "dataset"}[object_type]
    object_id = api("GET", f"/v1/{owner}")["objects"][0]["id"]
    path = f"/v1/{object_type}/{object_id}"
    row_id = api("POST", f"{path}/fetch", json={"limit": 1})["events"][0]["id"]
    item: dict[str, Any] = {"id": row_id, "tags": ["reviewed"], "comment": "ok", "metadata": {"by": "test"}}
    if object_type != "dataset":
        item |= {"scores": {"user": 1}, "expected": "better", "source": "app"}

    assert api("POST", f"{path}/feedback", json={"feedback": [item]}) == {"status": "success"}

    (row,) = [r for r in api("POST", f"{path}/fetch", json={"limit": 5})["events"] if r["id"] == row_id]
    assert row["tags"][-1] == "reviewed" and row["comments"][-1]["comment"] == {"text": "ok"}


def test_index(api: _Api) -> None:
    assert api("GET", "/v1") == "Hello, World!"


def test_rows_written_through_logs3_fetch_as_spec_events(api: _Api) -> None:
    """The SDK's write path is not in the spec, but the rows it leaves must be valid events."""
    project = api("POST", "/v1/project", json={"name": "sdk-writes"})
    experiment = api("POST", "/v1/experiment", json={"project_id": project["id"], "name": "sdk"})
    dataset = api("POST", "/v1/dataset", json={"project_id": project["id"], "name": "sdk"})
    logs = {"project_id": project["id"], "log_id": "g"}
    audit = {"_audit_source": "external", "_audit_metadata": {"user": "u"}}
    span = {"span_id": "s1", "root_span_id": "t1", "span_parents": None, "metrics": {"start": 1.0}}
    rows = [
        {**logs, "id": "root", **span, "input": "q", "span_attributes": {"name": "root", "type": "task"}},
        {**logs, "id": "child", "span_id": "s2", "root_span_id": "t1", "span_parents": ["s1"], "output": 1},
        {"experiment_id": experiment["id"], "id": "e", **span, "scores": {"acc": 0.5}},
        {"dataset_id": dataset["id"], "id": "d", "input": 1, "expected": 2, "tags": None},
    ]
    feedback = [
        {**logs, "id": "root", "_is_merge": True, "scores": {"user": 1}, **audit},
        {**logs, "id": "c", "origin": {"id": "root"}, "comment": {"text": "nice"}, **audit},
        {"experiment_id": experiment["id"], "id": "e", "_is_merge": True, "metrics": {"end": 2.0}},
        {"dataset_id": dataset["id"], "id": "d", "_is_merge": True, "expected": 3},
    ]
    for batch in (rows, feedback):
        response = api.http.post("/logs3", json={"rows": batch, "api_version": 2})
        assert response.status_code == 200, response.text

    fetched = {
        object_type: api("POST", f"/v1/{object_type}/{object_id}/fetch", json={})["events"]
        for object_type, object_id in (
            ("project_logs", project["id"]),
            ("experiment", experiment["id"]),
            ("dataset", dataset["id"]),
        )
    }
    assert {object_type: len(events) for object_type, events in fetched.items()} == {
        "project_logs": 2,
        "experiment": 1,
        "dataset": 1,
    }
    (root,) = [event for event in fetched["project_logs"] if event["id"] == "root"]
    assert root["comments"] and root["audit_data"]
