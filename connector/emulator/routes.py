"""The API endpoints: request parsing and response shapes, on top of the `Store`.

Shapes follow Braintrust's OpenAPI spec (`braintrust-api/openapi-official.yaml`);
the `/_emulator/*` admin endpoints are the emulator's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from connector.api.xact import parse_xact
from connector.emulator import json_text
from connector.emulator.attachments import ATTACHMENT_PATH, Attachments
from connector.emulator.btql import object_query
from connector.emulator.catalog import ListQuery
from connector.emulator.errors import Rejected, bad_request
from connector.emulator.faults import FaultPlan, FaultRule
from connector.emulator.feedback import feedback_events
from connector.emulator.kinds import KINDS, SPECS, Kind
from connector.emulator.logs3 import logs3_batches
from connector.emulator.overflow import UPLOAD_PATH, OverflowUploads
from connector.emulator.stats import Stats
from connector.emulator.store import OBJECT_TYPES, Events, ObjectType, Store
from connector.emulator.summary import metric_summaries, score_summaries
from schemas.api import UUID_TEXT

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, data: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        return cls(200, json_text.dumps(data), JSON, headers)

    @classmethod
    def error(cls, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error reply; the spec allows any text or JSON body for errors."""
        headers = (("Retry-After", retry_after),) if retry_after else ()
        if status == 413:
            # The body Braintrust's gateway sends for oversized requests.
            return cls(413, b'{"message":"Request Too Long"}', JSON, headers)
        return cls(status, message.encode(errors="replace"), TEXT, headers)


@dataclass(frozen=True)
class Call:
    """One request, as the endpoint handlers see it."""

    store: Store
    faults: FaultPlan
    stats: Stats
    uploads: OverflowUploads
    attachments: Attachments
    max_request_bytes: int
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    base_url: str
    repeat_cursor: bool = False
    empty_page: bool = False

    def json(self) -> Any:
        return _json_body(self.body)

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


def _listed(call: Call, name: str) -> tuple[str, ...]:
    """A list filter's values: the parameter repeated (the spec's form) or comma-separated (what the
    official `braintrust-api` client sends)."""
    given = call.query.get(name, ())
    # Given, but only commas: a filter of no id matches nothing.
    return tuple(part for value in given for part in value.split(",") if part) or (("",) if given else ())


def _uuid_arg(call: Call, name: str) -> str | None:
    value = call.arg(name)
    return _as_uuid(value, name) if value else value


def _as_uuid(value: str, name: str) -> str:
    """An id a listing is filtered or paged by, which the spec types `format: uuid`: matched in any case.

    Anything else is the client's mistake (a name or a slug where an id belongs): a 400, as the API
    answers, rather than an empty listing that looks like no object.
    """
    if not UUID_TEXT.fullmatch(value):
        raise bad_request(f"{name} must be a UUID, not {json.dumps(value)}")
    return value.lower()


def _in_url(name: str) -> str:
    """A name as a URL's path segment; a lone surrogate in it (valid in JSON text) as `?`."""
    return quote(name, errors="replace")


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json_text.loads(body)
    except json.JSONDecodeError as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from error


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    """An endpoint.

    Attributes:
        name: stable name used in stats, e.g. "project_logs.fetch".
        writes: changes data, so refused to a read-only key.
        public: served without an API key.
        admin: an emulator control endpoint: never faulted.
    """

    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Handler
    writes: bool = False
    public: bool = False
    admin: bool = False


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """Return the route serving `method path` and its path parameters.

    Raises:
        Rejected: 404 for an unknown path, 405 for a known path and another method.
    """
    allowed = []
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if route.method == method:
            params = match.groupdict()
            if UUID_TEXT.fullmatch(params.get("id", "")):
                params["id"] = params["id"].lower()  # a UUID matches in any case, as in a listing
            return route, params
        allowed.append(route.method)
    if allowed:
        raise Rejected(405, f"{method} is not allowed on {path}; use {', '.join(allowed)}")
    raise Rejected(404, f"no endpoint at {path}")


# Parameter parsing


def _count(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise bad_request(f"{name} must be a non-negative integer")


def _xact(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_xact(value)
    except (ValueError, TypeError) as error:
        raise bad_request(f"{name} must be a transaction id (a decimal string)") from error


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise bad_request(f"{name} must be a string")


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in {"true", "1"}


# Catalog endpoints


def _read_version(call: Call) -> int | None:
    """The `version` of a read of a versioned kind (a transaction id)."""
    if call.arg("environment") is not None:
        # An environment names a version chosen in the app; guessing one would answer wrongly.
        raise bad_request("the emulator has no environments: pass a version (a transaction id) instead")
    return _xact(call.arg("version"), "version")


def _list(kind: Kind) -> Handler:
    spec = SPECS[kind]

    def handle(call: Call) -> Reply:
        limit = _count(call.arg("limit"), "limit")
        query = ListQuery(
            limit=spec.list_limit if limit is None else limit,
            starting_after=_uuid_arg(call, "starting_after"),
            ending_before=_uuid_arg(call, "ending_before"),
            # An empty value (`ids=,`) is kept: a filter of no id matches nothing.
            ids=tuple(_as_uuid(each, "ids") if each else each for each in _listed(call, "ids")),
            name=call.arg(f"{kind}_name"),
            project_id=_uuid_arg(call, "project_id") if spec.scoped else None,
            project_name=call.arg("project_name") if spec.scoped else None,
            org_name=call.arg("org_name"),
            slug=call.arg("slug") if "slug" in spec.response else None,
            score_types=_listed(call, "score_type") if "score_type" in spec.response else (),
            version=_read_version(call) if spec.versioned else None,
        )
        return Reply.json({"objects": call.store.list_objects(kind, query)})

    return handle


def _create(kind: Kind, *, replace: bool = False) -> Handler:
    def handle(call: Call) -> Reply:
        write = call.store.replace if replace else call.store.create
        obj, created = write(kind, call.json())
        return Reply.json(obj, (("x-bt-found-existing", "false" if created else "true"),))

    return handle


def _get(kind: Kind) -> Handler:
    versioned = SPECS[kind].versioned
    return lambda call: Reply.json(
        call.store.get(kind, call.params["id"], _read_version(call) if versioned else None)
    )


def _patch(kind: Kind) -> Handler:
    return lambda call: Reply.json(call.store.patch(kind, call.params["id"], call.json()))


def _delete(kind: Kind) -> Handler:
    return lambda call: Reply.json(call.store.delete(kind, call.params["id"]))


# Event endpoints


def _insert(object_type: ObjectType) -> Handler:
    def handle(call: Call) -> Reply:
        body = call.json_object()
        if "events" not in body:
            raise bad_request('the body must be {"events": [...]}')
        row_ids = call.store.insert(object_type, call.params["id"], body["events"])
        call.stats.count_inserted(call.params["id"], len(row_ids))
        return Reply.json({"row_ids": row_ids})

    return handle


def _fetch(object_type: ObjectType, *, from_body: bool) -> Handler:
    def handle(call: Call) -> Reply:
        # The GET form has no cursor (spec): only the POST form can follow one.
        if from_body:
            args: Mapping[str, Any] = _typed_as_the_spec_says(call.json_object())
        else:
            args = {name: call.arg(name) for name in _GET_ARGS}
        return _page(call, object_type, call.params["id"], args, b"events")

    return handle


def _typed_as_the_spec_says(body: Mapping[str, Any]) -> dict[str, Any]:
    """A fetch body whose members have the spec's JSON types (`FetchEventsRequest`).

    The query string's form parses its text (`limit=10`); in a JSON body, a limit sent as text or a
    version as a number is a client's serialization bug, which the API refuses with a 400.
    """
    typed = dict(body)
    for name, value in body.items():
        wanted = _BODY_TYPES.get(name)
        if value is None or wanted is None:
            continue
        if wanted is int and type(value) is float and value.is_integer():
            typed[name] = int(value)  # JSON has one kind of number: to the API's JavaScript, 2.0 is 2
        elif type(value) is not wanted:
            kind = "a whole number" if wanted is int else "a string"
            raise bad_request(f"{name} must be {kind}, not {json.dumps(value)}")
    return typed


def _btql(call: Call) -> Reply:
    query = object_query(call.json_object())
    return _page(call, query.object_type, query.object_id, query.paging, b"data")


def _page(call: Call, object_type: ObjectType, object_id: str, args: Mapping[str, Any], key: bytes) -> Reply:
    """One fetch page as `{"<key>": [...], "cursor": ...}` (`events` for `/fetch`, `data` for `/btql`)."""
    page = call.store.fetch(
        object_type,
        object_id,
        limit=_count(args.get("limit"), "limit"),
        cursor=_text(args.get("cursor"), "cursor"),
        version=_xact(args.get("version"), "version"),
        max_xact_id=_xact(args.get("max_xact_id"), "max_xact_id"),
        max_root_span_id=_text(args.get("max_root_span_id"), "max_root_span_id"),
    )
    rows = [] if call.empty_page else page.rows
    call.stats.count_served(object_id, len(rows))
    cursor = page.cursor_here if call.repeat_cursor else page.cursor_again if call.empty_page else page.cursor
    return Reply(200, b'{"' + key + b'":[' + b",".join(rows) + b'],"cursor":' + orjson.dumps(cursor) + b"}")


def _feedback(object_type: ObjectType) -> Handler:
    def handle(call: Call) -> Reply:
        events = feedback_events(object_type, call.json())
        _write(call, [Events(object_type, call.params["id"], events)])
        return Reply.json({"status": "success"})

    return handle


def _logs3(call: Call) -> Reply:
    body = call.json()
    if isinstance(body, dict) and isinstance(body.get("rows"), dict):
        # A reference to the rows uploaded out of band (`overflow`): the body they make is the request.
        body = _json_body(call.uploads.take(body["rows"]))
    # The SDK only checks the status; the body says what was written, per object.
    written = _write(call, logs3_batches(body))
    return Reply.json({"status": "success", "rows": written})


def _logs3_overflow(call: Call) -> Reply:
    """Where to upload a `/logs3` body over the advertised limit (the SDK sends its size and rows' ids)."""
    key = call.uploads.new_key()
    url = f"{call.base_url}{UPLOAD_PATH}{key}"
    return Reply.json({"method": "PUT", "signedUrl": url, "headers": {"Content-Type": JSON}, "key": key})


def _upload(call: Call) -> Reply:
    call.uploads.put(call.params["key"], call.body)
    return Reply(200, b"", TEXT)


def _request_attachment_upload(call: Call) -> Reply:
    body = call.json_object()
    key, content_type = body.get("key"), body.get("content_type")
    if not isinstance(key, str) or not key or not isinstance(content_type, str):
        raise bad_request("key and content_type are required")
    try:
        key.encode()
    except UnicodeEncodeError:  # its upload URL could not name it: a URL's path is UTF-8
        raise bad_request("key holds a lone UTF-16 surrogate (half an emoji)") from None
    call.attachments.expect(key, content_type)
    return Reply.json({"signedUrl": _attachment_url(call, key), "headers": {"Content-Type": content_type}})


def _upload_attachment(call: Call) -> Reply:
    call.attachments.put(call.params["key"], call.body)
    return Reply(200, b"", TEXT)


def _report_attachment_status(call: Call) -> Reply:
    body = call.json_object()
    key = body.get("key")
    if not isinstance(key, str):
        raise bad_request("key is required")
    return Reply.json(call.attachments.report(key, body.get("status")))


def _attachment_metadata(call: Call) -> Reply:
    key, url = call.arg("key"), call.arg("url")
    if key:
        return Reply.json({"downloadUrl": _attachment_url(call, key), "status": call.attachments.status(key)})
    if url:  # an external attachment: its own URL, never uploaded here
        return Reply.json({"downloadUrl": url, "status": {"upload_status": "done"}})
    raise bad_request("give key (an uploaded attachment) or url (an external one)")


def _download_attachment(call: Call) -> Reply:
    body, content_type = call.attachments.download(call.params["key"])
    return Reply(200, body, content_type)


def _attachment_url(call: Call, key: str) -> str:
    return f"{call.base_url}{ATTACHMENT_PATH}{quote(key)}"


def _write(call: Call, batches: list[Events]) -> dict[str, int]:
    call.store.write(batches)
    for batch in batches:
        call.stats.count_inserted(batch.object_id, len(batch.events))
    return {batch.object_id: len(batch.events) for batch in batches}


_GET_ARGS = ("limit", "max_xact_id", "max_root_span_id", "version")
# The JSON type of each member of a POST fetch body (spec `FetchEventsRequest`); a null is no value.
_BODY_TYPES = {"limit": int, "cursor": str, "max_xact_id": str, "max_root_span_id": str, "version": str}


def _app_url(call: Call, project_name: str) -> str:
    return f"{call.base_url}/app/{_in_url(call.store.catalog.org_name)}/p/{_in_url(project_name)}"


def _summarize_dataset(call: Call) -> Reply:
    dataset = call.store.get("dataset", call.params["id"])
    project = call.store.get("project", dataset["project_id"])
    project_url = _app_url(call, project["name"])
    total = call.store.live_count("dataset", dataset["id"])
    return Reply.json(
        {
            "project_name": project["name"],
            "dataset_name": dataset["name"],
            "project_url": project_url,
            "dataset_url": f"{project_url}/datasets/{_in_url(dataset['name'])}",
            # Spec: without summarize_data only the metadata is returned.
            "data_summary": {"total_records": total} if _flag(call.arg("summarize_data")) else None,
        }
    )


def _summarize_experiment(call: Call) -> Reply:
    experiment = call.store.get("experiment", call.params["id"])
    project = call.store.get("project", experiment["project_id"])
    project_url = _app_url(call, project["name"])
    summary: dict[str, Any] = {
        "project_name": project["name"],
        "experiment_name": experiment["name"],
        "project_url": project_url,
        "experiment_url": f"{project_url}/experiments/{_in_url(experiment['name'])}",
        "comparison_experiment_name": None,
        "scores": None,
        "metrics": None,
    }
    if _flag(call.arg("summarize_scores")):
        rows = call.store.live_rows("experiment", experiment["id"])
        base = _comparison_experiment(call, experiment)
        compared = None if base is None else call.store.live_rows("experiment", base["id"])
        summary.update(
            comparison_experiment_name=None if base is None else base["name"],
            scores=score_summaries(rows, compared),
            metrics=metric_summaries(rows, compared),
        )
    return Reply.json(summary)


def _comparison_experiment(call: Call, experiment: dict[str, Any]) -> dict[str, Any] | None:
    """The spec's: `comparison_experiment_id`, else the experiment's base (`_base_experiment`)."""
    given = call.arg("comparison_experiment_id")
    return call.store.get("experiment", given) if given else _base_experiment(call, experiment)


def _base_experiment(call: Call, experiment: dict[str, Any]) -> dict[str, Any] | None:
    """The experiment's `base_exp_id`, else (none, or deleted since) the latest experiment of its
    project created before it."""
    if base_id := experiment.get("base_exp_id"):
        try:
            return call.store.get("experiment", base_id)
        except Rejected as missing:
            if missing.status != 404:
                raise
    earlier = [
        other
        for other in call.store.list_objects("experiment", ListQuery(project_id=experiment["project_id"]))
        if other["id"] != experiment["id"] and other["created"] < experiment["created"]
    ]
    return max(earlier, key=lambda other: other["created"], default=None)


def _base_experiment_id(call: Call) -> Reply:
    """What `Experiment.fetch_base_experiment` (and `Eval`'s `BaseExperiment()`) asks the app for."""
    experiment_id = call.json_object().get("id")
    if not isinstance(experiment_id, str):
        raise bad_request("id: the experiment's id is required")
    base = _base_experiment(call, call.store.get("experiment", experiment_id))
    if base is None:
        # The SDK reads a 400 as "no base experiment".
        raise bad_request(f"experiment {experiment_id} has no base experiment")
    return Reply.json({"base_exp_id": base["id"], "base_exp_name": base["name"]})


# SDK bootstrap endpoints


def _login(call: Call) -> Reply:
    catalog = call.store.catalog
    org = {
        "id": catalog.org_id,
        "name": catalog.org_name,
        "api_url": call.base_url,
        "proxy_url": call.base_url,
        "realtime_url": None,
        "is_universal_api": True,
        "git_metadata": None,
    }
    return Reply.json({"org_info": [org]})


def _version(call: Call) -> Reply:
    # The limit the emulator enforces: the SDK sizes its `/logs3` requests by it, and sends a larger
    # body (one large span) through `/logs3/overflow`.
    return Reply.json({"version": "bt-sync-emulator", "logs3_payload_max_bytes": call.max_request_bytes})


def _index(call: Call) -> Reply:
    return Reply(200, b"Hello, World!", TEXT)


# Emulator control endpoints


def _add_faults(call: Call) -> Reply:
    body = call.json()
    try:
        rules = [FaultRule.from_json(item) for item in (body if isinstance(body, list) else [body])]
    except ValueError as error:
        raise bad_request(str(error)) from error
    for rule in rules:
        call.faults.add(rule)
    return Reply.json({"pending": len(call.faults.pending())})


def _clear_faults(call: Call) -> Reply:
    call.faults.clear()
    return Reply.json({"pending": 0})


def _stats(call: Call) -> Reply:
    return Reply.json(call.stats.snapshot())


def _reset_stats(call: Call) -> Reply:
    call.stats.reset()
    return Reply.json(call.stats.snapshot())


def _route(method: str, path: str, name: str, handler: Handler, **flags: bool) -> Route:
    return Route(method, re.compile(path), name, handler, **flags)


def _routes() -> list[Route]:
    routes: list[Route] = []
    for kind in KINDS:
        item = rf"/v1/{kind}/(?P<id>[^/]+)"
        routes += [
            _route("GET", f"/v1/{kind}", f"{kind}.list", _list(kind)),
            _route("POST", f"/v1/{kind}", f"{kind}.create", _create(kind), writes=True),
            _route("GET", item, f"{kind}.get", _get(kind)),
            _route("PATCH", item, f"{kind}.patch", _patch(kind), writes=True),
            _route("DELETE", item, f"{kind}.delete", _delete(kind), writes=True),
        ]
        if SPECS[kind].replaceable:
            routes.append(
                _route("PUT", f"/v1/{kind}", f"{kind}.replace", _create(kind, replace=True), writes=True)
            )
    for object_type in OBJECT_TYPES:
        item = rf"/v1/{object_type}/(?P<id>[^/]+)"
        routes += [
            _route("POST", f"{item}/insert", f"{object_type}.insert", _insert(object_type), writes=True),
            _route("GET", f"{item}/fetch", f"{object_type}.fetch", _fetch(object_type, from_body=False)),
            _route("POST", f"{item}/fetch", f"{object_type}.fetch", _fetch(object_type, from_body=True)),
            _route(
                "POST", f"{item}/feedback", f"{object_type}.feedback", _feedback(object_type), writes=True
            ),
        ]
    return [
        *routes,
        _route("GET", r"/v1/dataset/(?P<id>[^/]+)/summarize", "dataset.summarize", _summarize_dataset),
        _route(
            "GET", r"/v1/experiment/(?P<id>[^/]+)/summarize", "experiment.summarize", _summarize_experiment
        ),
        _route("POST", "/logs3", "logs3", _logs3, writes=True),
        _route("POST", "/logs3/overflow", "logs3.overflow", _logs3_overflow, writes=True),
        # The "signed URL" of an upload: its key is its credential, as a signed URL's signature is.
        _route("PUT", f"{UPLOAD_PATH}(?P<key>.+)", "logs3.upload", _upload, public=True),
        _route("POST", "/attachment", "attachment.upload_url", _request_attachment_upload, writes=True),
        _route("POST", "/attachment/status", "attachment.status", _report_attachment_status, writes=True),
        _route("GET", "/attachment", "attachment.get", _attachment_metadata),
        # Signed URLs, as for overflow uploads: the key is the credential.
        _route("PUT", f"{ATTACHMENT_PATH}(?P<key>.+)", "attachment.put", _upload_attachment, public=True),
        _route("GET", f"{ATTACHMENT_PATH}(?P<key>.+)", "attachment.bytes", _download_attachment, public=True),
        _route("POST", "/btql", "btql", _btql),
        _route("POST", "/api/apikey/login", "login", _login),
        _route("POST", "/api/base_experiment/get_id", "base_experiment", _base_experiment_id),
        _route("GET", "/version", "version", _version, public=True),
        _route("GET", "/v1", "index", _index, public=True),
        _route("POST", "/_emulator/faults", "admin.faults.add", _add_faults, admin=True),
        _route("DELETE", "/_emulator/faults", "admin.faults.clear", _clear_faults, admin=True),
        _route("GET", "/_emulator/stats", "admin.stats", _stats, admin=True),
        _route("POST", "/_emulator/stats/reset", "admin.stats.reset", _reset_stats, admin=True),
    ]


ROUTES = _routes()
