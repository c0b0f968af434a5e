"""The API client against the real emulator over loopback."""

from __future__ import annotations

import base64
import contextlib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from connector.api.client import LIST_PAGE_SIZE, BraintrustClient, PageTooLarge
from connector.api.pagination import FetchPaginator, PageEnd
from connector.api.xact import parse_xact, snapshot_pin
from connector.config import ApiSettings
from connector.emulator import Emulator, FaultRule
from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFoundError,
    PaginationError,
    RequestError,
    ServerUnavailable,
)
from connector.redaction import redact
from schemas.api import FetchEventsRequest, FetchEventsResponse, ObjectType


def make_client(emulator: Emulator, **overrides: object) -> BraintrustClient:
    settings = {"api_url": emulator.url, "api_key": emulator.api_key, "backoff_initial_s": 0.01} | overrides
    return BraintrustClient(ApiSettings(**settings))


def page_end(page: FetchEventsResponse) -> PageEnd:
    """What the paginator needs of a parsed page."""
    oldest = min(((parse_xact(e["_xact_id"]), e["root_span_id"]) for e in page.events), default=None)
    return PageEnd(page.cursor, len(page.events), oldest)


def page_all(client: BraintrustClient, object_id: str, version: int, limit: int = 7) -> list[dict]:
    paginator = FetchPaginator(version, limit)
    rows: list[dict] = []
    while paginator.has_next:
        page = client.fetch_page(ObjectType.PROJECT_LOGS, object_id, paginator.request())
        paginator.update(page_end(page))
        rows += page.events
    return rows


@pytest.fixture
def project(emulator: Emulator) -> dict:
    return emulator.store.create_project("client-tests")


def insert_logs(emulator: Emulator, project_id: str, count: int, prefix: str = "row") -> None:
    events = [
        {"id": f"{prefix}-{i}", "input": {"i": i}, "root_span_id": f"trace-{i % 5}"} for i in range(count)
    ]
    emulator.store.insert("project_logs", project_id, events)


def test_pagination_returns_every_version_exactly_once(emulator: Emulator, project: dict) -> None:
    for batch in range(6):
        insert_logs(emulator, project["id"], 40, prefix=f"b{batch}")
    # a second version of 30 rows: both versions are in the history and must both be served
    emulator.store.insert(
        "project_logs", project["id"], [{"id": f"b0-{i}", "_is_merge": True, "output": i} for i in range(30)]
    )
    with make_client(emulator) as client:
        newest = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        version = parse_xact(newest.events[0]["_xact_id"])
        rows = page_all(client, project["id"], version, limit=3)
        assert client.stats.fetch_pages > 10
    versions = [(r["id"], r["_xact_id"]) for r in rows]
    assert len(versions) == len(set(versions)) == 240 + 30
    xacts = [parse_xact(r["_xact_id"]) for r in rows]
    assert xacts == sorted(xacts, reverse=True)


def test_version_pin_excludes_writes_made_mid_pagination(emulator: Emulator, project: dict) -> None:
    insert_logs(emulator, project["id"], 50)
    with make_client(emulator) as client:
        first = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        version = parse_xact(first.events[0]["_xact_id"])
        paginator = FetchPaginator(version, 2)
        page = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], paginator.request())
        paginator.update(page_end(page))
        seen = list(page.events)
        insert_logs(emulator, project["id"], 20, prefix="late")  # written after the pin
        emulator.store.insert("project_logs", project["id"], [{"id": "row-1", "_object_delete": True}])
        while paginator.has_next:
            page = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], paginator.request())
            paginator.update(page_end(page))
            seen += page.events
    assert not [r for r in seen if r["id"].startswith("late")]
    assert all(parse_xact(r["_xact_id"]) <= version for r in seen)
    assert {r["id"] for r in seen} == {f"row-{i}" for i in range(50)}


def test_deleted_rows_never_appear(emulator: Emulator, project: dict) -> None:
    insert_logs(emulator, project["id"], 20)
    emulator.store.insert("project_logs", project["id"], [{"id": "row-3", "_is_merge": True, "output": "v2"}])
    emulator.store.insert("project_logs", project["id"], [{"id": "row-3", "_object_delete": True}])
    with make_client(emulator) as client:
        first = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        # The deletion is the newest write: a pin at the newest *row* would predate it.
        pin = snapshot_pin(parse_xact(first.events[0]["_xact_id"]), time.time())
        rows = page_all(client, project["id"], pin)
    ids = [r["id"] for r in rows]
    assert "row-3" not in ids
    assert len(ids) == 19


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(kind="status", route="/fetch", status=429, retry_after="0", times=2),
        FaultRule(kind="status", route="/fetch", status=503, times=3),
        FaultRule(kind="status", route="/fetch", status=500, times=1),
        FaultRule(kind="drop", route="/fetch", times=2),
        FaultRule(kind="truncate", route="/fetch", times=2),
        FaultRule(kind="slow", route="/fetch", delay_s=1.0, times=1),
    ],
    ids=lambda rule: f"{rule.kind}-{rule.status}",
)
def test_retries_recover_from_injected_faults(emulator: Emulator, project: dict, rule: FaultRule) -> None:
    insert_logs(emulator, project["id"], 30)
    emulator.faults.add(rule)
    with make_client(emulator, timeout_s=0.5) as client:
        first = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        rows = page_all(client, project["id"], parse_xact(first.events[0]["_xact_id"]))
        assert client.stats.retries >= 1
    assert {r["id"] for r in rows} == {f"row-{i}" for i in range(30)}


def test_retry_after_is_honoured(emulator: Emulator, project: dict) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=429, retry_after="1", times=1))
    with make_client(emulator) as client:
        started = time.monotonic()
        assert [p.name for p in client.list_projects()] == ["client-tests"]
        assert time.monotonic() - started >= 0.95


def test_retries_exhausted_give_a_clear_error(emulator: Emulator, project: dict) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=503, times=10))
    with make_client(emulator, max_attempts=3) as client, pytest.raises(ServerUnavailable) as caught:
        list(client.list_projects())
    assert "after 3 attempts" in str(caught.value)
    assert "HTTP 503" in str(caught.value)


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ("/v1/project", "response body is not valid JSON (cut short?)"),
        ("/fetch", "response body is not a JSON object (cut short?)"),
    ],
    ids=["parsed", "fetch-page"],
)
def test_json_cut_short_every_time_gives_a_clear_error(
    emulator: Emulator, project: dict, route: str, says: str
) -> None:
    # A whole response (its Content-Length kept) whose JSON stops short, as from a proxy that cut it.
    emulator.faults.add(FaultRule(kind="body", route=route, body='{"objects": [{"id": "a"', times=10))
    request = FetchEventsRequest(limit=1)
    with make_client(emulator, max_attempts=2) as client, pytest.raises(ServerUnavailable) as caught:
        if route == "/fetch":
            client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request)
        else:
            list(client.list_projects())
    assert (
        f"after 2 attempts (last error: MalformedBody: {says}); the API at {emulator.url} sent bodies cut"
        in str(caught.value)
    )


# A page read whole, and one read into a buffer of its declared length (as the sync reads pages).
_MOST_TAKEN = pytest.mark.parametrize("most_bytes", [None, 1 << 20], ids=["joined", "declared-length"])


@_MOST_TAKEN
@pytest.mark.parametrize("blanks", [0, 10, 5000], ids=["none", "a few", "more than the tail looked at"])
def test_a_fetch_page_is_told_whole_or_cut_short_past_any_whitespace(
    emulator: Emulator, project: dict, blanks: int, most_bytes: int | None
) -> None:
    # Whitespace either side of a page is still a page; a page cut short is not, whatever follows it.
    whole, cut = '{"events": [], "cursor": null}', '{"events": [{"id": "a"'
    padding = " \t\r\n" * blanks
    request = FetchEventsRequest(limit=1)
    with make_client(emulator, max_attempts=2) as client:
        emulator.faults.add(FaultRule(kind="body", route="/fetch", body=padding + whole + padding, times=1))
        page = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=most_bytes)
        assert page.strip() == whole.encode()
        emulator.faults.add(FaultRule(kind="body", route="/fetch", body=padding + cut + padding, times=None))
        with pytest.raises(ServerUnavailable, match=r"not a JSON object \(cut short\?\)"):
            client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=most_bytes)


@_MOST_TAKEN
def test_an_empty_fetch_page_is_no_json_object(
    emulator: Emulator, project: dict, most_bytes: int | None
) -> None:
    # A success with no body at all (`Content-Length: 0`), read whole or into a buffer of its length.
    emulator.faults.add(FaultRule(kind="body", route="/fetch", body="", times=None))
    request = FetchEventsRequest(limit=1)
    with make_client(emulator, max_attempts=2) as client, pytest.raises(ServerUnavailable) as caught:
        client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=most_bytes)
    assert "(last error: MalformedBody: response body is not a JSON object (cut short?))" in str(caught.value)


@pytest.mark.parametrize("route", ["/v1/project", "/fetch"])
def test_a_web_page_for_a_response_fails_at_once_asking_whether_the_url_is_braintrust(
    emulator: Emulator, project: dict, route: str
) -> None:
    # A proxy's sign-in page, or any web server at the URL, answering 200.
    emulator.faults.add(FaultRule(kind="body", route=route, body="<html><body>Sign in</body></html>"))
    with make_client(emulator, max_attempts=3) as client, pytest.raises(MalformedResponse) as caught:
        if route == "/fetch":
            client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        else:
            list(client.list_projects())
    assert "with a body that is not JSON ('<html><body>Sign in</body></html>'…); is the API URL a " in str(
        caught.value
    )
    assert client.stats.requests == 1


def test_a_success_that_is_no_json_quoting_the_key_back_hides_it(emulator: Emulator, project: dict) -> None:
    # A server at a wrong URL echoing the request as text: the message quoted the key's first characters,
    # and Dagster kept them in its run storage.
    echoed = f"Authorization: Bearer {emulator.api_key}\nHost: example"
    # Past blanks too: the body was cut at 1,024 bytes before the key was hidden.
    for body in (echoed, " " * 1000 + echoed):
        emulator.faults.add(FaultRule(kind="body", route="/v1/project", body=body))
        with make_client(emulator) as client, pytest.raises(MalformedResponse) as caught:
            list(client.list_projects())
        assert "with a body that is not JSON ('Authorization: Bearer ***" in str(caught.value)
        assert emulator.api_key[:6] not in str(caught.value)


def test_a_body_cut_short_after_an_outage_is_no_proxy_s_doing(emulator: Emulator) -> None:
    # Said of the last attempt alone, five 503s then a body cut short blamed a proxy.
    emulator.faults.add(FaultRule(kind="status", route="^/v1/project$", status=503, times=2))
    emulator.faults.add(FaultRule(kind="body", route="^/v1/project$", body='{"objects": [', times=1))
    with make_client(emulator, max_attempts=3) as client, pytest.raises(ServerUnavailable) as caught:
        list(client.list_projects())
    assert "(last error: MalformedBody" in str(caught.value)
    assert str(caught.value).endswith("is unavailable or overloaded, try again later.")


def test_a_host_name_that_does_not_resolve_is_named_not_an_outage() -> None:
    # A mistyped host read as "unavailable or overloaded, try again later".
    settings = ApiSettings(api_url="http://bt-sync-test.invalid", api_key="k", max_attempts=1)
    with BraintrustClient(settings) as client, pytest.raises(ServerUnavailable) as caught:
        list(client.list_projects())
    assert str(caught.value).endswith(
        "the API at http://bt-sync-test.invalid names a host this machine cannot resolve: check the URL "
        "(--api-url, BRAINTRUST_API_URL)."
    )


def test_text_past_thousands_of_blanks_is_no_json_at_once(emulator: Emulator) -> None:
    # Only its first 1,024 bytes were looked at: all blanks, it was taken for JSON cut short, six times.
    emulator.faults.add(FaultRule(kind="body", route="/v1/project", body=" " * 3000 + "Sign in", times=None))
    with make_client(emulator, max_attempts=3) as client, pytest.raises(MalformedResponse) as caught:
        list(client.list_projects())
    assert "with a body that is not JSON ('Sign in'…)" in str(caught.value)
    assert client.stats.requests == 1


@pytest.mark.parametrize("status", [404, 400])
def test_a_web_page_for_an_error_is_named_not_quoted(emulator: Emulator, status: int) -> None:
    # A mistyped API URL reaching some web server: its markup would fill the one error line.
    page = "<!DOCTYPE html><html><head><style>body { margin: 0 }</style></head><body>Not Found</body></html>"
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=status, body=page))
    with make_client(emulator) as client, pytest.raises(ApiError) as caught:
        list(client.list_projects())
    assert str(caught.value) == (
        f"GET /v1/project{': not found' if status == 404 else ' was rejected'} (HTTP {status})"
        f"{'.' if status == 404 else ':'} The answer is a web page, not Braintrust's JSON: is the API URL "
        "a Braintrust API?"
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("  name: too long\n", "name: too long"),
        ("<?xml version='1.0'?><Error>SlowDown</Error>", "<?xml version='1.0'?><Error>SlowDown</Error>"),
        ("\ufeff<html><body>Not Found</body></html>", "The answer is a web page, not Braintrust's JSON"),
    ],
    ids=["text", "xml", "page after a BOM"],
)
def test_an_errors_text_is_quoted_unless_it_is_a_web_page(emulator: Emulator, body: str, says: str) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=422, body=body))
    with make_client(emulator) as client, pytest.raises(ApiError) as caught:
        list(client.list_projects())
    assert str(caught.value).startswith(f"GET /v1/project was rejected (HTTP 422): {says}")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            '{"objects": [{"id": "x", "name": null, "org_id": "o"}]}',
            "(name: Input should be a valid string, of the object with id x)",
        ),
        ('{"objects": [{"id": "x"}]}', "(name: Field required, of the object with id x)"),
    ],
)
def test_a_catalog_response_breaking_the_contract_names_the_request_not_a_setting(
    emulator: Emulator, body: str, says: str
) -> None:
    emulator.faults.add(FaultRule(kind="body", route="^/v1/project$", method="GET", body=body))
    with make_client(emulator) as client, pytest.raises(MalformedResponse) as caught:
        list(client.list_projects())
    assert str(caught.value).startswith(f"GET /v1/project returned a response bt-sync cannot read {says}")


def test_repeating_cursor_is_an_error_not_a_loop(emulator: Emulator, project: dict) -> None:
    insert_logs(emulator, project["id"], 30)
    emulator.faults.add(FaultRule(kind="repeat_cursor", route="/fetch", times=5, after=2))
    with make_client(emulator) as client, pytest.raises(PaginationError):
        first = client.fetch_page(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
        page_all(client, project["id"], parse_xact(first.events[0]["_xact_id"]), limit=2)


def test_401_fails_at_once_clearly_and_never_contains_the_key(emulator: Emulator) -> None:
    wrong_key = "sk-wrong-secret-0123456789"
    with make_client(emulator, api_key=wrong_key) as client, pytest.raises(AuthError) as caught:
        list(client.list_projects())
    assert client.stats.requests == 1  # not retried: a wrong key stays wrong
    message = str(caught.value)
    assert "HTTP 401" in message and "BRAINTRUST_API_KEY" in message
    assert wrong_key not in message and wrong_key not in repr(caught.value)


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ('"{}"', "is quoted (the quotes are part of the value: an env file's?)"),
        ("'{}'", "is quoted (the quotes are part of the value: an env file's?)"),
        ("Bearer {}", "starts with 'Bearer ', which bt-sync sends itself"),
        ("BRAINTRUST_API_KEY={}", "starts with a variable's name and '=' (a whole line of an env file?)"),
        (
            "export BRAINTRUST_API_KEY={}",
            "starts with a variable's name and '=' (a whole line of an env file?)",
        ),
        ('"{}', "is quoted (the quotes are part of the value: an env file's?)"),
    ],
)
def test_a_401_for_a_key_pasted_with_more_than_the_key_says_what_without_showing_it(
    emulator: Emulator, shape: str, says: str
) -> None:
    # Each was "Invalid API key" alone: a quoted value is an env file's most common slip.
    given = shape.format(emulator.api_key)
    with make_client(emulator, api_key=given) as client, pytest.raises(AuthError) as caught:
        list(client.list_projects())
    message = str(caught.value)
    assert message.endswith(f" The key given {says}: give the key alone.")
    assert emulator.api_key not in message


class _Redirecting(BaseHTTPRequestHandler):
    """A server answering every GET with a redirect, as an http:// address of an https API may."""

    location = "https://api.example.test/v1/project"

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


class _ProxyAsking(BaseHTTPRequestHandler):
    """A proxy answering every request, and every tunnel asked of it, that it wants credentials."""

    status = 407

    def _ask(self) -> None:
        self.send_response(self.status)
        self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_CONNECT = _ask


class _ProxyEchoing(BaseHTTPRequestHandler):
    """A debugging proxy refusing a request with a page listing the request's headers."""

    def do_GET(self) -> None:
        listed = "".join(f"{name}: {value}\n" for name, value in self.headers.items())
        body = f"refused; the request's headers were:\n{listed}".encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _ProxyForbidding(_ProxyAsking):
    """A proxy whose rules let no tunnel through (a Squid ACL)."""

    status = 403

    def log_message(self, *_: object) -> None:
        pass


class _ProxyDenyingWithAPage(BaseHTTPRequestHandler):
    """A proxy answering a plain-HTTP request with its policy's page (a corporate filter's)."""

    status = 403

    def do_GET(self) -> None:
        body = b"<html><h1>Access Denied</h1>blocked by policy</html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _ProxyNotFindingWithAPage(_ProxyDenyingWithAPage):
    status = 404


@contextmanager
def serving(
    tls: ssl.SSLContext | None = None, handler: type[BaseHTTPRequestHandler] = _Redirecting
) -> Iterator[str]:
    """A server on loopback (`_Redirecting` unless told), behind `tls` if given; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Trickling(BaseHTTPRequestHandler):
    """A server answering every GET with a body of `padding` blanks, `step` bytes every tenth of a second."""

    requests = 0
    padding, step = 80, 1

    def do_GET(self) -> None:
        type(self).requests += 1
        body = b'{"objects": []' + b" " * self.padding + b"}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up
            for start in range(0, len(body), self.step):
                self.wfile.write(body[start : start + self.step])
                self.wfile.flush()
                time.sleep(0.1)

    def log_message(self, *_: object) -> None:
        pass


class _Mislabelling(BaseHTTPRequestHandler):
    """A server answering every GET with plain JSON labelled as `encoding` (a misconfigured proxy's)."""

    requests = 0
    encoding = "gzip"

    def do_GET(self) -> None:
        type(self).requests += 1
        body = b'{"objects": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", self.encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_a_body_its_content_encoding_does_not_match_is_retried_then_one_line(encoding: str) -> None:
    # httpx's DecodingError is no transport error: it escaped as a traceback, and a sync stopped every
    # object at the one whose page came so.
    handler = type("Mislabelled", (_Mislabelling,), {"requests": 0, "encoding": encoding})
    with (
        serving(handler=handler) as url,
        BraintrustClient(
            ApiSettings(api_url=url, api_key="k", backoff_initial_s=0.01, max_attempts=2)
        ) as client,
        pytest.raises(ServerUnavailable) as caught,
    ):
        list(client.list_projects())
    said = "(last error: MalformedBody: the body does not decode as its Content-Encoding says"
    assert said in str(caught.value)
    assert "sent bodies cut short or not what their headers say every time (a proxy on the way" in str(
        caught.value
    )
    assert handler.requests == 2


@contextmanager
def trickling(padding: int, step: int) -> Iterator[ApiSettings]:
    """Settings of a client of a `_Trickling` server, with a timeout of a second and two attempts."""
    handler = type("Trickled", (_Trickling,), {"requests": 0, "padding": padding, "step": step})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield ApiSettings(
            api_url=f"http://127.0.0.1:{server.server_address[1]}",
            api_key="trickled",
            timeout_s=1,
            max_attempts=2,
            backoff_initial_s=0.01,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_a_body_coming_in_steadily_past_the_timeout_is_read_whole() -> None:
    # A large page over a slow link: 2 KB a second, for a second and a half.
    with trickling(padding=3_000, step=200) as settings, BraintrustClient(settings) as client:
        assert list(client.list_projects()) == []
        assert client.stats.requests == 1


def test_a_body_trickling_in_past_the_timeout_is_a_timeout_and_retried() -> None:
    # httpx bounds each wait for data: a server sending a byte at a time held a sync for as long as it liked.
    started = time.monotonic()
    with (
        trickling(padding=80, step=1) as settings,
        BraintrustClient(settings) as client,
        pytest.raises(ServerUnavailable) as failed,
    ):
        list(client.list_projects())
    assert (
        "failed after 2 attempts (last error: ReadTimeout: the response's body came in at under 1,024 bytes "
        "a second past the timeout (1s, --timeout))"
    ) in str(failed.value)
    assert client.stats.requests == 2
    # Each body takes 9.5 s to arrive, 10 bytes a second; each attempt gave up after about its second.
    assert time.monotonic() - started < 6


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server's TLS context with a certificate no authority signed."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_settings_that_keep_the_api_out_of_reach_fail_at_once_naming_the_remedy(
    emulator: Emulator, tmp_path: Path
) -> None:
    told = {
        # An https URL to a server speaking plain HTTP.
        emulator.url.replace("http://", "https://"): "(it answered in something other than TLS): check that "
        "the URL's scheme, http or https, is the server's",
    }
    with serving() as redirecting:
        told[redirecting] = "with a redirect (HTTP 302) to https://api.example.test/v1/project: set --api-url"
        with serving(self_signed(tmp_path)) as untrusted:
            told[untrusted] = "its certificate is not one this machine trusts: self-signed certificate"
            for url, says in told.items():
                with make_client(emulator, api_url=url) as client, pytest.raises(ConfigError) as caught:
                    list(client.list_projects())
                assert says in str(caught.value)
                assert client.stats.retries == 0  # each would fail alike


def test_a_redirect_to_an_address_quoting_the_key_is_told_without_it(emulator: Emulator) -> None:
    # A sign-in page's address may carry what the request did: Dagster keeps the message as it is given.
    class ToSignIn(_Redirecting):
        location = f"https://login.example.test/sso/{emulator.api_key}/continue"

    with (
        serving(handler=ToSignIn) as url,
        make_client(emulator, api_url=url) as client,
        pytest.raises(ConfigError) as caught,
    ):
        list(client.list_projects())
    assert "with a redirect (HTTP 302) to https://login.example.test/sso/***/continue" in str(caught.value)
    assert emulator.api_key not in str(caught.value)


def test_a_header_line_quoting_the_key_that_httpx_refuses_is_told_without_it(emulator: Emulator) -> None:
    # A broken server echoing the request's header in a line without its colon: httpx's refusal quotes the
    # line, and the last error's text went into the message as it was.
    class EchoingHeader(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            echoed = (
                f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAuthorization Bearer {emulator.api_key}\r\n\r\n{{}}"
            )
            self.wfile.write(echoed.encode())

        def log_message(self, *_: object) -> None:
            pass

    with (
        serving(handler=EchoingHeader) as url,
        make_client(emulator, api_url=url, max_attempts=2) as client,
        pytest.raises(ServerUnavailable) as caught,
    ):
        list(client.list_projects())
    assert "illegal header line" in str(caught.value) and "Authorization Bearer ***" in str(caught.value)
    assert emulator.api_key not in str(caught.value)


def test_a_listed_object_whose_id_is_the_key_is_told_without_it(emulator: Emulator) -> None:
    # The object a listing's error names, by its id, for the API's owners to find it.
    odd = orjson.dumps({"objects": [{"id": emulator.api_key, "name": 5}]}).decode()
    emulator.faults.add(FaultRule(kind="body", body=odd, route="^/v1/project", times=None))
    with make_client(emulator) as client, pytest.raises(MalformedResponse) as caught:
        list(client.list_projects())
    assert "of the object with id ***" in str(caught.value) and emulator.api_key not in str(caught.value)


def test_a_proxy_asking_for_credentials_fails_at_once_naming_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(handler=_ProxyAsking) as proxy:
        for name in ("http_proxy", "https_proxy", "no_proxy"):
            for spelt in (name, name.upper()):
                monkeypatch.setenv(spelt, "" if name == "no_proxy" else proxy)
        # Its answer to a plain-HTTP request (taken for the API's own 407), and its refusal of a tunnel to
        # an https API (retried for seconds, as a proxy that was down).
        for url in (emulator.url, "https://api.example.test"):
            with make_client(emulator, api_url=url) as client, pytest.raises(ConfigError) as caught:
                list(client.list_projects())
            assert str(caught.value).startswith(
                f"the proxy {proxy} refused to carry GET /v1/project to the API at {url} (HTTP 407 Proxy "
                "Authentication Required) without credentials it accepts"
            )
            assert "NO_PROXY" in str(caught.value)
            # As the command line prints it, credentials in URLs hidden: the example is no URL's.
            assert "as USER:PASSWORD@ before its host" in redact(str(caught.value))
            assert client.stats.requests == 1


@pytest.mark.parametrize("handler", [_ProxyDenyingWithAPage, _ProxyNotFindingWithAPage])
def test_a_proxy_s_page_for_a_plain_http_api_names_the_proxy_not_the_key(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, handler: type[_ProxyDenyingWithAPage]
) -> None:
    # Its 403 was said to be Braintrust refusing the key, its 404 the API URL's fault: the proxy went unnamed.
    with serving(handler=handler) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "")
        with make_client(emulator) as client, pytest.raises(ConfigError) as caught:
            list(client.list_projects())
    said = str(caught.value)
    assert said.startswith(
        f"GET /v1/project was answered (HTTP {handler.status}) with a web page, not Braintrust's JSON, "
        f"through the proxy {proxy}: most likely the proxy's own refusal"
    ), said
    assert "NO_PROXY" in said and "API key" not in said
    assert client.stats.requests == 1


def test_a_proxy_quoting_its_credentials_back_is_told_without_them(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its page listed `Proxy-Authorization: Basic <user:password in base64>`, which the error carried to
    # the terminal, `--json` and Dagster's event log.
    with serving(handler=_ProxyEchoing) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("://", "://alice:s3cr3t%2Fpw@"))
        monkeypatch.setenv("NO_PROXY", "")
        with make_client(emulator) as client, pytest.raises(RequestError) as caught:
            list(client.list_projects())
    said = str(caught.value)
    assert "Proxy-Authorization: Basic ***" in said and "Authorization: Bearer ***" in said, said
    basic = base64.b64encode(b"alice:s3cr3t/pw").decode()
    assert basic not in said and "s3cr3t" not in said and emulator.api_key not in said


def test_a_proxy_refusing_the_tunnel_or_named_for_tls_it_lacks_fails_at_once_naming_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tunnel refused by the proxy's rules was retried for 13 s as a proxy that was down; a plain-HTTP
    # proxy named https:// was said to be the API's TLS mismatch, to mend in the API's URL.
    with serving(handler=_ProxyForbidding) as proxy, serving() as plain:
        for name, named in (
            (proxy, "HTTP 403 Forbidden) as its rules stand"),
            (f"https{plain[4:]}", "is named with http://"),
        ):
            monkeypatch.setenv("HTTPS_PROXY", name)
            with (
                make_client(emulator, api_url="https://api.example.test") as client,
                pytest.raises(ConfigError) as caught,
            ):
                list(client.list_projects())
            assert f"the proxy {name}" in str(caught.value) and named in str(caught.value)
            assert client.stats.requests == 1


def test_an_api_url_ending_in_v1_is_named_in_the_not_found_error(emulator: Emulator) -> None:
    with (
        make_client(emulator, api_url=f"{emulator.url}/v1/") as client,
        pytest.raises(NotFoundError) as caught,
    ):
        list(client.list_projects())
    assert str(caught.value).endswith(
        f"(the API URL {emulator.url}/v1 ends in /v1, which bt-sync puts before every path itself: set it "
        "without)"
    )


def test_403_fails_at_once(emulator: Emulator) -> None:
    # The emulator accepts `<key>-readonly` for reads and answers 403 to writes.
    with make_client(emulator, api_key=emulator.api_key + "-readonly") as client:
        with pytest.raises(AuthError, match="HTTP 403") as caught:
            client.create_project("not-allowed")
        assert client.stats.requests == 1
    assert "refused this API key permission" in str(caught.value)


def test_a_403_says_what_the_server_said(emulator: Emulator, project: dict) -> None:
    # Of one object only, as Braintrust grants access object by object: the message blamed the key alone.
    said = '{"error": "You do not have permission to read this experiment"}'
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=403, body=said, times=1))
    with make_client(emulator) as client, pytest.raises(AuthError) as caught:
        list(client.list_projects())
    assert f"(HTTP 403 on GET /v1/project: {said}). Check the API key given" in str(caught.value)
    # Of one object's rows: the key may read the others.
    emulator.faults.add(FaultRule(kind="status", route="/fetch", status=403, body=said, times=1))
    with make_client(emulator) as client, pytest.raises(AuthError) as caught:
        client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
    assert "Check what the key may read (it may be refused this object alone), the API key given" in str(
        caught.value
    )


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(emulator: Emulator, status: int) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=status, times=2))
    with make_client(emulator) as client:
        assert list(client.list_projects()) == []
        assert (client.stats.requests, client.stats.retries) == (3, 2)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_client_errors_are_not_retried(emulator: Emulator, status: int) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=status, times=1))
    with make_client(emulator) as client, pytest.raises(ApiError, match=f"HTTP {status}"):
        list(client.list_projects())
    assert client.stats.requests == 1


def test_5xx_and_timeouts_halve_the_page_size(emulator: Emulator, project: dict) -> None:
    insert_logs(emulator, project["id"], 100, prefix="single")  # 5 traces of 20 rows
    emulator.store.insert(
        "project_logs", project["id"], [{"id": f"t{i}", "root_span_id": f"t{i}"} for i in range(60)]
    )
    emulator.faults.add(FaultRule(kind="status", route="/fetch", status=503, times=1))
    emulator.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=1.0, times=1))
    with make_client(emulator, timeout_s=0.5) as client:
        body = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=48))
    traces = {event["root_span_id"] for event in orjson.loads(body)["events"]}
    # 48 traces asked for; a 503 made it 24, then a timeout 12.
    assert len(traces) == 12


@pytest.mark.parametrize(
    ("fault", "limit", "traces"),
    [
        (FaultRule(kind="status", route="/fetch", status=500), 48, 24),
        (FaultRule(kind="status", route="/fetch", status=504), 16, 10),  # never below MIN_FETCH_LIMIT
        (FaultRule(kind="status", route="/fetch", status=503), 1, 1),  # nor raised to it
        (FaultRule(kind="status", route="/fetch", status=429, retry_after="0"), 48, 48),
        (FaultRule(kind="status", route="/fetch", status=408), 48, 48),
        (FaultRule(kind="drop", route="/fetch"), 48, 48),
    ],
    ids=["500", "504-floor", "503-below-the-floor", "429", "408", "drop"],
)
def test_only_server_errors_and_timeouts_shrink_the_page(
    emulator: Emulator, project: dict, fault: FaultRule, limit: int, traces: int
) -> None:
    emulator.store.insert(
        "project_logs", project["id"], [{"id": f"t{i}", "root_span_id": f"t{i}"} for i in range(60)]
    )
    emulator.faults.add(fault)
    with make_client(emulator) as client:
        body = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=limit))
        assert (client.stats.requests, client.stats.retries, client.stats.fetch_pages) == (2, 1, 1)
    assert len({event["root_span_id"] for event in orjson.loads(body)["events"]}) == traces


@pytest.mark.parametrize("compressed", [False, True], ids=["declared-length", "gzip"])
def test_a_page_longer_than_the_most_taken_is_not_read_to_its_end(
    emulator: Emulator, project: dict, compressed: bool
) -> None:
    emulator.store.generate_logs(project["id"], 300, trace_spans=(1, 1), payload_bytes=5_000, rng_seed=5)
    if compressed:  # its declared length is the compressed one: the client counts what it reads
        emulator.faults.add(FaultRule(kind="gzip", route="/fetch", times=None))
    request = FetchEventsRequest(limit=300)
    with make_client(emulator) as client:
        whole = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request)
        # Under a bound of exactly the page's length, or more, the page arrives whole, at its own length.
        for most in (len(whole), 2 * len(whole)):
            taken = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=most)
            assert taken == whole
        with pytest.raises(PageTooLarge) as too_large:
            client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=100_000)
        assert (client.stats.requests, client.stats.retries, client.stats.fetch_pages) == (4, 0, 3)
    size, read = too_large.value.size, too_large.value.read
    if compressed:
        # Reading stops past the most taken, well before the page's end (1.5 MB); the page's size is
        # estimated from the share of its compressed length read.
        assert 100_000 < read < len(whole) // 2
        assert 0.8 < size / len(whole) < 1.25
    else:  # the page's declared length is known before a byte of it is read
        assert (size, read) == (len(whole), 0)


def test_a_page_cut_short_is_asked_for_again_and_arrives_whole(emulator: Emulator, project: dict) -> None:
    # A page under the most taken is read into a buffer of its declared length: a connection closed
    # part way must be retried, never leave the rest of the buffer as it was made.
    insert_logs(emulator, project["id"], 30)
    request = FetchEventsRequest(limit=30)
    with make_client(emulator) as client:
        whole = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request)
        emulator.faults.add(FaultRule(kind="truncate", route="/fetch", times=1))
        again = client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], request, most_bytes=len(whole))
        assert (again, client.stats.retries) == (whole, 1)


def test_a_url_s_scheme_is_read_whatever_its_case(emulator: Emulator) -> None:
    shouted = emulator.url.replace("http://", "HTTP://")
    with make_client(emulator, api_url=shouted) as client:
        assert list(client.list_projects()) == []


def test_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BRAINTRUST_API_KEY") as raised:
        BraintrustClient(ApiSettings(api_url="http://127.0.0.1:9", api_key=None))
    # The library's words: a flag is the command line's to name.
    assert "--" not in str(raised.value)


def test_settings_repr_hides_the_key() -> None:
    settings = ApiSettings(api_url="http://127.0.0.1:9", api_key="sk-visible-if-leaked")
    assert "sk-visible-if-leaked" not in repr(settings) and "sk-visible-if-leaked" not in str(settings)


def test_list_pages_with_starting_after(emulator: Emulator) -> None:
    names = {f"p{i:03d}" for i in range(230)}
    for name in names:
        emulator.store.create_project(name)
    with make_client(emulator) as client:
        listed = [p.name for p in client.list_projects()]
    assert sorted(listed) == sorted(names)


def test_a_listing_whose_page_repeats_an_object_lists_it_once(emulator: Emulator) -> None:
    for n in range(150):
        emulator.store.create_project(f"p{n:03d}")
    with make_client(emulator) as client:
        first = client._request("GET", "/v1/project", params={"limit": LIST_PAGE_SIZE})["objects"]
        rest = client._request(
            "GET", "/v1/project", params={"limit": LIST_PAGE_SIZE, "starting_after": first[-1]["id"]}
        )["objects"]
        # The second page starts again with the first's last project (objects created meanwhile shift a
        # listing by creation time): it was stored, counted and synced twice.
        # Within the page too.
        repeating = orjson.dumps({"objects": [first[-1], rest[0], *rest]}).decode()
        emulator.faults.add(FaultRule(kind="body", body=repeating, route="/v1/project", times=1, after=1))
        listed = [project.id for project in client.list_projects()]
        assert listed == [project["id"] for project in [*first, *rest]]
        # A listing going back to its first page forever is refused, not followed.
        emulator.faults.add(
            FaultRule(
                kind="body", body=orjson.dumps({"objects": first}).decode(), route="/v1/project", times=None
            )
        )
        with pytest.raises(ServerUnavailable, match="`starting_after` did not advance"):
            list(client.list_projects())


# The message keeps the first 300 characters of the body: the key starts before the cut, ends after, in
# characters of one byte each or of four (a long key then ended past the bytes decoded: its first
# characters showed), or quoted so often that the keys hidden left the cut in a key past them.
@pytest.mark.parametrize(("filler", "times"), [("x", 290), ("\U0001f600", 290), ("x", 28)])
def test_an_error_quoting_the_key_shows_none_of_it_even_where_the_text_is_cut(
    filler: str, times: int
) -> None:
    with Emulator(seed="empty", api_key="sk-" + "Abc123Def456" * 4) as emulator:
        body = filler * times + (f"Bearer {emulator.api_key}" if times > 100 else emulator.api_key * 80)
        emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=422, body=body))
        with make_client(emulator) as client, pytest.raises(ApiError) as caught:
            list(client.list_projects())
    assert emulator.api_key[:6] not in str(caught.value) and "***" in str(caught.value)
