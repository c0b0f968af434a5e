"""The Braintrust REST API client: auth, retries, listing, fetch pages and inserts.

One `httpx.Client` (pooled keep-alive connections) per `BraintrustClient`.
Every call is retried on 408/425/429/5xx, timeouts, dropped connections and
cut-short bodies, honouring `Retry-After`; 401/403 fail at once.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import orjson
from httpx._utils import URLPattern, get_environment_proxies  # the proxy httpx itself would choose
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from connector import __version__
from connector.api.retry import (
    RETRYABLE_STATUSES,
    TRANSIENT_EXCEPTIONS,
    MalformedBody,
    RetryableResponse,
    backoff_honouring_retry_after,
    parse_retry_after,
)
from connector.config import ApiSettings
from connector.display import counted
from connector.errors import (
    ApiError,
    ApiMisdirected,
    AuthError,
    ConfigError,
    MalformedResponse,
    MissingApiKey,
    NotFoundError,
    PayloadTooLarge,
    RequestError,
    ServerUnavailable,
    first_line,
)
from connector.redaction import hide_short_secret, redact, redact_url, scrub, uri_secrets
from schemas.api import (
    ApiObject,
    Dataset,
    FetchEventsRequest,
    FetchEventsResponse,
    InsertEventsResponse,
    ListResponse,
    LoginResponse,
    ObjectType,
    Project,
    SummarizeDatasetResponse,
)
from schemas.kinds import ObjectKind

LIST_PAGE_SIZE = 100
MIN_FETCH_LIMIT = 10
# A response's body slower than this on average, past the timeout, is a timeout (`_Pace`).
SLOWEST_BODY_BYTES_PER_S = 1024
_SERVER_TEXT_CHARS = 300
# Of a success's body that is no JSON: its start, enough to tell what answered.
_NOT_JSON_CHARS = 40
_BLANKS = re.compile(rb"[ \t\r\n]*")
# The resolver's words for a host name it does not know, or cannot ask about (glibc's, macOS's).
_NAME_UNRESOLVED = re.compile(
    "|".join(
        (
            "Name or service not known",
            "nodename nor servname",
            "No address associated",
            "Temporary failure in name resolution",
        )
    )
)
_NOT_TLS = "it answered in something other than TLS"
# The start of an HTML page (a proxy's, a web server's at a mistyped URL), not an XML error's.
_WEB_PAGE = re.compile(r"<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)
# The start of a JSON object past any whitespace, and how much of a body's end is looked at first.
_OBJECT_START = re.compile(rb"\s*\{")
_TAIL_BYTES = 1024
# A key given as a whole assignment: `BRAINTRUST_API_KEY=sk-…`.
_ASSIGNMENT = re.compile(r"(export\s+)?[A-Za-z_]\w*=")

_Model = TypeVar("_Model", bound=BaseModel)


class PageTooLarge(Exception):
    """A fetch page's body is larger than its caller takes: it was not read to its end.

    Args:
        size: the body's length: as the response declared it; for a compressed body, the bytes read
            scaled by the share of its declared (compressed) length received; else the bytes read.
            Always more than the most taken.
        read: the body's bytes read before reading stopped.
    """

    def __init__(self, size: int, read: int) -> None:
        super().__init__(f"a fetch page of about {size} bytes, {read} of them read")
        self.size = size
        self.read = read


@dataclass
class ClientStats:
    """What this client sent: requests (including retries), retries, and fetch pages.

    Updated under a lock: one client is shared by the push path's sender threads.
    """

    requests: int = 0
    retries: int = 0
    fetch_pages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, *, requests: int = 0, retries: int = 0, fetch_pages: int = 0) -> None:
        """Add to the counters."""
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.fetch_pages += fetch_pages


@cache
def _tls_context() -> ssl.SSLContext:
    # Reading the CA bundle takes 50 ms: once per process, not once per client (a sensor makes one a tick).
    return httpx.create_ssl_context()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment sends requests to `url` through (None: none), chosen as httpx chooses
    it: urllib reads NO_PROXY otherwise (`.example.com` bypasses the proxy for `example.com` there, not
    in httpx), and an unreachable proxy fails every request as an unreachable API would."""
    mounts = sorted(
        ((URLPattern(pattern), proxy) for pattern, proxy in get_environment_proxies().items()),
        key=lambda mount: mount[0],
    )
    target = httpx.URL(url)
    return next((proxy for pattern, proxy in mounts if pattern.matches(target)), None)


class BraintrustClient:
    """A synchronous client for the parts of the Braintrust API that bt-sync uses.

    Args:
        settings: API URL, key, timeout and retry budget.
        transport: an httpx transport to use instead of the network (tests only).
    """

    def __init__(self, settings: ApiSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        if settings.api_key is None or not settings.api_key.get_secret_value().strip():
            # Said in the library's words: the command line and Dagster each say where their users give one.
            raise MissingApiKey("No Braintrust API key: set BRAINTRUST_API_KEY, or give ApiSettings one.")
        self.api_url = settings.api_url
        # An error's body may quote the request's headers back: its text never shows the key.
        key = settings.api_key.get_secret_value().strip()
        self.stats = ClientStats()
        # httpx reads no proxy from the environment for a transport given to it.
        proxy = _proxy_for(settings.api_url) if transport is None else None
        # A proxy's answer may quote the request's headers back too: its credentials, as Basic auth.
        self._hidden = _Hidden(key, tuple(uri_secrets(proxy)) if proxy is not None else ())
        self._proxy = "a proxy" if proxy is None else f"the proxy {redact_url(proxy)}"
        self._through = "" if proxy is None else f" (through {self._proxy})"
        # A proxy answers a plain-HTTP API's requests itself; an https API's it only tunnels to.
        self._plain_http = httpx.URL(settings.api_url).scheme == "http"
        # A proxy reached over TLS is the first to set it up: a plain-HTTP proxy named `https://` fails it.
        try:
            self._tls_proxy = proxy is not None and httpx.URL(proxy).scheme == "https"
        except httpx.InvalidURL as error:  # a tab in it, say: httpx refused it as it made the client
            raise ConfigError(
                f"{self._proxy}, which the environment sets (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, in either "
                f"case), is no URL httpx takes: {redact(str(error))}"
            ) from None
        self._max_attempts = settings.max_attempts
        self._timeout_s = settings.timeout_s
        # The `Date` of the last answer each thread received (`server_time`).
        self._answered = threading.local()
        self._wait = backoff_honouring_retry_after(settings.backoff_initial_s, settings.backoff_max_s)
        try:
            self._http = httpx.Client(
                base_url=settings.api_url,
                headers={
                    "Authorization": f"Bearer {key}",
                    "User-Agent": f"bt-sync/{__version__}",
                },
                timeout=httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 10.0)),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                verify=_tls_context(),
                transport=transport,
            )
        except ValueError as error:  # httpx reads the proxy from the environment
            if "Unknown scheme for proxy URL" not in str(error):
                raise
            # `socks4://`, `ftp://`, a blank before `http://`: a traceback, and no `--json` document.
            raise ConfigError(
                f"{self._proxy}, which the environment sets (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, in either "
                "case), is no proxy httpx can use: name one as http://, https:// or socks5://HOST:PORT, or "
                "unset it"
            ) from None
        except ImportError as error:
            if "socksio" not in str(error):
                raise
            raise ConfigError(
                "the environment sets a SOCKS proxy (ALL_PROXY, HTTPS_PROXY or HTTP_PROXY), which httpx "
                "reaches only with the socksio package: install it in bt-sync's environment (pip install "
                "socksio), or unset the proxy"
            ) from None

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    @property
    def server_time(self) -> datetime | None:
        """The API's clock as the last answer this thread received gave it (its `Date`, to the second),
        or None where it gave none this machine can read."""
        date = getattr(self._answered, "date", None)
        try:
            moment = parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            return None
        # A date without a zone (`-0000`) is read as naive: no clock to compare with.
        return moment if moment is not None and moment.tzinfo is not None else None

    def without_key(self, text: str) -> str:
        """`text`, a message that may quote what the API sent, with the API key hidden."""
        return self._hidden.within(text)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Catalog -------------------------------------------------------------------------------------

    def list_projects(self, *, name: str | None = None) -> Iterator[Project]:
        """Yield every project visible to the key, optionally only the one called `name`."""
        params = {"project_name": name} if name else {}
        for raw in self._list("/v1/project", params):
            yield self._validated(Project, raw, "GET /v1/project")

    def create_project(self, name: str) -> Project:
        """Create a project, or return the existing one with that name."""
        return self._validated(
            Project, self._request("POST", "/v1/project", json={"name": name}), "POST /v1/project"
        )

    def list_datasets(self, project_id: str, *, name: str | None = None) -> Iterator[Dataset]:
        """Yield the datasets of a project, optionally only the one called `name`."""
        params = {"project_id": project_id} | ({"dataset_name": name} if name else {})
        for raw in self._list("/v1/dataset", params):
            yield self._validated(Dataset, raw, "GET /v1/dataset")

    def create_dataset(self, project_id: str, name: str) -> Dataset:
        """Create a dataset, or return the existing one with that name in the project."""
        body = {"project_id": project_id, "name": name}
        return self._validated(Dataset, self._request("POST", "/v1/dataset", json=body), "POST /v1/dataset")

    def summarize_dataset(self, dataset_id: str) -> SummarizeDatasetResponse:
        """Return the dataset's summary, including its live record count."""
        path = f"/v1/dataset/{dataset_id}/summarize"
        raw = self._request("GET", path, params={"summarize_data": "true"})
        return self._validated(SummarizeDatasetResponse, raw, f"GET {path}")

    def get_object(self, kind: ObjectKind, object_id: str) -> ApiObject:
        """Return one object of `kind` by id.

        Raises:
            NotFoundError: it does not exist (any more).
        """
        path = f"/v1/{kind.api_path}/{object_id}"
        return self._validated(kind.model, self._request("GET", path), f"GET {path}")

    def list_kind(self, kind: ObjectKind, project_id: str | None = None) -> Iterator[ApiObject]:
        """Yield every object of `kind` (in `project_id`, for kinds listed per project)."""
        params = {"project_id": project_id} if project_id is not None else {}
        for raw in self._list(f"/v1/{kind.api_path}", params):
            yield self._validated(kind.model, raw, f"GET /v1/{kind.api_path}")

    def org_names(self, app_url: str) -> dict[str, str]:
        """Names of the key's organizations by id, from the Braintrust app's login endpoint.

        Args:
            app_url: the Braintrust app (the web UI), e.g. `https://www.braintrust.dev`.
        """
        url = f"{app_url.rstrip('/')}/api/apikey/login"
        login = self._validated(LoginResponse, self._request("POST", url), f"POST {url}")
        return {org.id: org.name for org in login.org_info}

    # Events --------------------------------------------------------------------------------------

    def fetch_page(
        self, object_type: ObjectType, object_id: str, request: FetchEventsRequest
    ) -> FetchEventsResponse:
        """Fetch one page of row versions, newest first, parsed into Python (for small pages).

        The sync reads pages with `fetch_raw` instead: its rows are parsed once, by DuckDB.
        """
        raw = orjson.loads(self.fetch_raw(object_type, object_id, request))
        what = f"fetch of {object_type.value} {object_id}"
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            raise MalformedResponse(f"{what} returned no `events` list")
        if not isinstance(raw.get("cursor"), str | None):
            raise MalformedResponse(f"{what} returned a non-string `cursor`")
        return FetchEventsResponse.model_construct(events=raw["events"], cursor=raw.get("cursor"))

    def fetch_raw(
        self,
        object_type: ObjectType,
        object_id: str,
        request: FetchEventsRequest,
        *,
        most_bytes: int | None = None,
    ) -> bytes | bytearray:
        """Fetch one page of row versions, newest first, as the response body's bytes.

        On 5xx and timeouts the page size is halved for the next attempt (down to
        `MIN_FETCH_LIMIT`, a smaller one kept): large pages are what time out on a loaded server.

        Args:
            most_bytes: the largest body taken (None: any); reading a larger one stops past it.

        Raises:
            NotFoundError: the object no longer exists.
            PageTooLarge: the body ran past `most_bytes`.
        """
        body = request.model_dump(exclude_none=True)

        def shrink_page(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            server_side = isinstance(error, RetryableResponse) and error.status >= 500
            if (server_side or isinstance(error, httpx.TimeoutException)) and body.get("limit"):
                # Never raised: a page of fewer traces than the floor (a read's first) stays as small.
                body["limit"] = min(body["limit"], max(MIN_FETCH_LIMIT, body["limit"] // 2))

        content: bytes | bytearray = self._request(
            "POST",
            f"/v1/{object_type.value}/{object_id}/fetch",
            json=body,
            on_retry=shrink_page,
            parse=_json_object_bytes,
            most_bytes=most_bytes,
        )
        self.stats.count(fetch_pages=1)
        return content

    def insert_events(self, object_type: ObjectType, object_id: str, body: bytes) -> InsertEventsResponse:
        """Insert events given as a pre-serialised `{"events": [...]}` JSON body.

        The body is bytes so callers can measure it against the request-size limit
        exactly once, without serialising twice.

        Raises:
            PayloadTooLarge: the server refused the body's size (413); split and resend.
        """
        path = f"/v1/{object_type.value}/{object_id}/insert"
        raw = self._request("POST", path, content=body, headers={"Content-Type": "application/json"})
        return self._validated(InsertEventsResponse, raw, f"POST {path}")

    # Plumbing ------------------------------------------------------------------------------------

    def _list(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Page a list endpoint with `starting_after` until an empty page, each object once.

        An object a page repeats is skipped: a listing that pages by `starting_after` over objects created
        meanwhile, or a proxy's stale page, showed one twice, stored and synced twice.
        """
        starting_after: str | None = None
        listed: set[str] = set()
        while True:
            page_params: dict[str, str | int] = {**params, "limit": LIST_PAGE_SIZE}
            if starting_after:
                page_params["starting_after"] = starting_after
            try:
                objects = ListResponse.model_validate(self._request("GET", path, params=page_params)).objects
            except ValidationError:
                raise ServerUnavailable(f"GET {path} returned no `objects` list") from None
            if not objects:
                return
            new = []
            for obj in objects:
                # By the id's text: an id that is none (a number, missing) is refused when the object is read.
                if (identity := str(obj.get("id"))) not in listed:
                    listed.add(identity)
                    new.append(obj)
            if not new:
                # Paging in a circle (or not advancing): it would never end.
                raise ServerUnavailable(f"GET {path}: `starting_after` did not advance")
            yield from new
            starting_after = objects[-1]["id"]

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        on_retry: Any = None,
        parse: Callable[[bytes | bytearray], Any] = orjson.loads,
        most_bytes: int | None = None,
    ) -> Any:
        # Whether every failed attempt got a body that is not what it claims to be (see below).
        malformed_only = True

        def before_sleep(state: RetryCallState) -> None:
            nonlocal malformed_only
            self.stats.count(retries=1)
            malformed_only &= state.outcome is not None and isinstance(
                state.outcome.exception(), MalformedBody
            )
            if on_retry is not None:
                on_retry(state)

        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT_EXCEPTIONS),
            wait=self._wait,
            stop=stop_after_attempt(self._max_attempts),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(
                        method,
                        path,
                        json=json,
                        content=content,
                        params=params,
                        headers=headers,
                        parse=parse,
                        most_bytes=most_bytes,
                    )
        except TRANSIENT_EXCEPTIONS as error:
            attempts = counted(self._max_attempts, "attempts")
            # A body not what it claims to be, every time: no overload, more likely a proxy rewriting it,
            # which waiting does not mend.
            if malformed_only and isinstance(error, MalformedBody):
                state = (
                    "sent bodies cut short or not what their headers say every time (a proxy on the way may "
                    "change them)"
                )
            elif isinstance(error, httpx.ConnectError) and _NAME_UNRESOLVED.search(str(error)):
                # A mistyped host is no outage: waiting does not mend it.
                proxy = " and the proxy's" if self._through else ""
                state = (
                    "names a host this machine cannot resolve: check the URL (--api-url, BRAINTRUST_API_URL)"
                    f"{proxy}"
                )
            else:
                state = "is unavailable or overloaded, try again later"
            raise ServerUnavailable(
                # The last error may quote what the server sent (a header line httpx refused).
                f"{method} {path} failed after {attempts} ({self._hidden.within(_describe(error))}); "
                f"the API at {redact(self.api_url)}{self._through} {state}.",
                status=error.status if isinstance(error, RetryableResponse) else None,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _validated(self, model: type[_Model], raw: Any, request: str) -> _Model:
        """`raw`, a response body, as `model`.

        Raises:
            MalformedResponse: the body is not what the API's contract says, naming the first field at
                fault (and the key hidden, should the server have put it there).
        """
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            issue = error.errors()[0]
            field = ".".join(str(part) for part in issue["loc"]) or "the body"
            # One object of a listing: which one, for the API's owners to find it.
            named = raw.get("id") if isinstance(raw, dict) and field != "id" else None
            which = f", of the object with id {named}" if isinstance(named, str) else ""
            raise MalformedResponse(
                self.without_key(
                    f"{request} returned a response bt-sync cannot read ({field}: {issue['msg']}{which}); "
                    "is the API URL a Braintrust API?"
                )
            ) from None

    def _proxy_refused(self, method: str, path: str, answer: str) -> ApiMisdirected:
        """A proxy refused to carry a request (its `answer`, a 4xx): so will it every request."""
        remedy = (
            "without credentials it accepts: give its user and password in its URL (HTTPS_PROXY or "
            "HTTP_PROXY), as USER:PASSWORD@ before its host"
            if answer.startswith(f"{HTTPStatus.PROXY_AUTHENTICATION_REQUIRED.value} ")
            else "as its rules stand: ask its administrator to let this machine reach the API's host"
        )
        return ApiMisdirected(
            f"{self._proxy} refused to carry {method} {path} to the API at {redact(self.api_url)} (HTTP "
            f"{answer}) {remedy}, or bypass it for the API's host (NO_PROXY)"
        )

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        parse: Callable[[bytes | bytearray], Any],
        most_bytes: int | None,
    ) -> Any:
        self.stats.count(requests=1)
        if json is not None:
            content, headers = orjson.dumps(json), {**(headers or {}), "Content-Type": "application/json"}
        # The body is read here, not kept on the response: httpx leaves a response in a reference
        # cycle, which would hold a whole fetch page in memory until Python's cyclic GC runs.
        try:
            with self._http.stream(method, path, content=content, params=params, headers=headers) as response:
                status, retry_after = response.status_code, response.headers.get("Retry-After")
                location = response.headers.get("Location")
                self._answered.date = response.headers.get("Date")
                pace = _Pace(self._timeout_s)
                body = _read(response, most_bytes if status < 300 else None, pace)
        except httpx.DecodingError as error:
            # No transport error, yet as passing: a misconfigured proxy's label, or a body cut short.
            raise MalformedBody(
                f"the body does not decode as its Content-Encoding says ({first_line(error)})"
            ) from None
        except httpx.ProxyError as error:
            # Its answer to the tunnel asked for (`CONNECT`), as httpcore words it: `403 Forbidden`. A 4xx
            # is the proxy's rule (credentials, where it may connect to); a 5xx, the API's host unreachable.
            if re.match(r"4\d\d ", answer := str(error)):
                raise self._proxy_refused(method, path, answer) from None
            raise
        except httpx.ConnectError as error:
            mismatch = _tls_mismatch(error)
            if mismatch == _NOT_TLS and self._tls_proxy:
                # Either handshake may have met plain HTTP: the proxy's own, or the API's through it.
                raise ApiMisdirected(
                    f"cannot talk TLS with {self._proxy}, or through it with the API at "
                    f"{redact(self.api_url)} ({mismatch}): a proxy that speaks plain HTTP is named with "
                    "http:// (HTTPS_PROXY, HTTP_PROXY), even for an https API; an API that does, with an "
                    "http:// URL (--api-url, BRAINTRUST_API_URL)"
                ) from None
            if mismatch is not None:
                raise ApiMisdirected(
                    f"cannot talk TLS with the API at {redact(self.api_url)}{self._through} ({mismatch}): "
                    "check that the URL's scheme, http or https, is the server's (--api-url, "
                    "BRAINTRUST_API_URL); for a server whose certificate a private authority signed (a "
                    "proxy's too), set SSL_CERT_FILE to that authority's certificate"
                ) from None
            raise
        if status < 300:
            _refuse_what_is_not_json(method, path, body, self._hidden)
            try:
                return parse(body)
            except orjson.JSONDecodeError:
                raise MalformedBody("response body is not valid JSON (cut short?)") from None
        if status in RETRYABLE_STATUSES:
            raise RetryableResponse(status, parse_retry_after(retry_after))
        if status == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED:  # a proxy's answer to a plain-HTTP request
            raise self._proxy_refused(method, path, f"{status} Proxy Authentication Required")
        if 300 <= status < 400:
            # Not followed: a client sends its key only to the address it was given.
            raise ApiMisdirected(
                f"the API at {redact(self.api_url)} answered {method} {path} with a redirect (HTTP {status}) "
                # The address may quote the key (a sign-in page's): Dagster keeps messages as they are.
                f"to {self._hidden.within(location or 'nowhere it named')}: set --api-url "
                "(BRAINTRUST_API_URL) to the address the API is at"
            )
        if self._through and self._plain_http and 400 <= status < 500 and _is_web_page(body):
            # Through a proxy, a web page is most likely the proxy's own refusal, not the API's: an https
            # API's comes as the proxy's answer to the tunnel (`_proxy_refused`), a plain-HTTP one's here.
            raise ApiMisdirected(
                f"{method} {path} was answered (HTTP {status}) with a web page, not Braintrust's JSON, "
                f"through {self._proxy}: most likely the proxy's own refusal: ask its administrator to let "
                "this machine reach the API's host, or bypass the proxy for it (NO_PROXY); else check the "
                f"API URL {redact(self.api_url)} (--api-url, BRAINTRUST_API_URL)"
            )
        refused = _status_error(method, path, status, body, self._hidden)
        if isinstance(refused, NotFoundError) and httpx.URL(self.api_url).path.rstrip("/").endswith("/v1"):
            # `https://api.braintrust.dev/v1`, as the API's reference writes its paths: every request 404s.
            refused = NotFoundError(
                f"{refused} (the API URL {redact(self.api_url)} ends in /v1, which bt-sync puts before every "
                "path itself: set it without)",
                status=status,
            )
        raise refused


def _read(response: httpx.Response, most_bytes: int | None, pace: _Pace) -> bytes | bytearray:
    """The response's body, in one buffer, as long as it keeps `pace`.

    Raises:
        PageTooLarge: the body is longer than `most_bytes`, as its declared length says, or as reading
            it finds; the rest is left unread (closing the response drops the connection).
        httpx.ReadTimeout: the body fell behind `pace` (retried, a fetch with a smaller page).
    """
    declared = _declared_length(response)
    # Only a length under a bound is trusted to size a buffer: a wrong header must not make one of
    # gigabytes, where a body joined takes only the bytes that come.
    if most_bytes is not None and declared is not None:
        if declared > most_bytes:
            raise PageTooLarge(declared, 0)
        return _read_declared(response, declared, pace)
    chunks: list[bytes] = []
    received = 0
    for chunk in pace.kept(response):
        received += len(chunk)
        if most_bytes is not None and received > most_bytes:
            raise PageTooLarge(_estimated_length(response, received), received)
        chunks.append(chunk)
    return b"".join(chunks)


def _read_declared(response: httpx.Response, length: int, pace: _Pace) -> bytearray:
    """A body of a declared length, read into one buffer of that length.

    Joining its chunks held each fetch page twice at once, the chunks and the joined body, in the
    fetch thread while the page before was typed: a sync peaked 7-15 MB higher (a compressed body,
    whose length is not declared, is still joined). httpx reads exactly the declared length, or
    fails on a connection closed part way (`RemoteProtocolError`, which is retried).
    """
    body = bytearray(length)
    received = 0
    with memoryview(body) as view:
        for chunk in pace.kept(response):
            view[received : received + len(chunk)] = chunk
            received += len(chunk)
    return body


class _Pace:
    """The slowest a response's body may come in: httpx bounds each wait for data, and a body trickling in
    (a byte a second) stays within each wait, holding a sync as long as the server liked. Once the timeout
    has passed since its headers, a body must have come at `SLOWEST_BODY_BYTES_PER_S` on average: a large
    page over a slow link does, by far."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._started = time.monotonic()

    def kept(self, response: httpx.Response) -> Iterator[bytes]:
        """The body's chunks, as long as they keep the pace."""
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            allowed = self._timeout_s + received / SLOWEST_BODY_BYTES_PER_S
            if time.monotonic() - self._started > allowed:
                raise httpx.ReadTimeout(
                    f"the response's body came in at under {SLOWEST_BODY_BYTES_PER_S:,} bytes a second past "
                    f"the timeout ({self._timeout_s:g}s, --timeout)"
                )
            yield chunk


def _estimated_length(response: httpx.Response, received: int) -> int:
    """The length of a body read in part (a compressed one): the `received` bytes it has given so far,
    scaled by the share of its declared length downloaded for them (`received` itself when it declares
    none). The page is then asked for again with about the right number of traces, not half as many
    each time."""
    length, downloaded = _content_length(response), response.num_bytes_downloaded
    if length is None or not downloaded:
        return received
    return max(received, received * length // downloaded)


def _declared_length(response: httpx.Response) -> int | None:
    """The body's length as the response declares it, when that is the length read (not compressed)."""
    uncompressed = response.headers.get("Content-Encoding", "identity") == "identity"
    return _content_length(response) if uncompressed else None


def _content_length(response: httpx.Response) -> int | None:
    """The bytes the response says it sends (compressed ones, for a compressed body), if it says."""
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _refuse_what_is_not_json(method: str, path: str, body: bytes | bytearray, hidden: _Hidden) -> None:
    """Fail at once on a success whose body is no JSON at all (a web page): no retry can mend that.

    Raises:
        MalformedResponse: the body does not start as JSON does.
    """
    # Past the blanks (a text of thousands of them was taken for JSON cut short), by its first byte.
    blanks = _BLANKS.match(body)
    start = blanks.end() if blanks else 0
    if start < len(body) and body[start : start + 1] not in b'{["-0123456789tfn':
        # A server echoing the request as text quotes the key: hidden in the whole body (cut at 1,024
        # bytes, a key past blanks showed in part).
        shown = _key_hidden(body[start:], hidden, _NOT_JSON_CHARS)
        raise MalformedResponse(
            f"{method} {path} answered with a body that is not JSON ({shown!r}…); is the API URL a "
            "Braintrust API?"
        )


def _json_object_bytes(content: bytes | bytearray) -> bytes | bytearray:
    """Check a body cheaply for being cut short, without parsing it (DuckDB parses it once, later)."""
    if not (_OBJECT_START.match(content) and _last_text(content).endswith(b"}")):
        raise MalformedBody("response body is not a JSON object (cut short?)")
    return content


def _last_text(content: bytes | bytearray) -> bytes | bytearray:
    """The end of `content` up to its last byte that is not whitespace: `bytes.strip` would copy a
    page of megabytes to look at one byte."""
    tail = content[-_TAIL_BYTES:].rstrip()
    # A tail of whitespace only (rare): the whole body says where its text ends.
    return tail if tail or len(content) <= _TAIL_BYTES else content.rstrip()


def _tls_mismatch(error: httpx.ConnectError) -> str | None:
    """What went wrong setting up TLS, when it is a setting's doing, not the network's: a certificate
    this machine does not trust, or a server that does not speak TLS (an https URL to an http port).
    Retrying would only fail the same way."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its certificate is not one this machine trusts: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
            return _NOT_TLS
        cause = cause.__cause__ or cause.__context__
    return None


def _status_error(method: str, path: str, status: int, body: bytes | bytearray, hidden: _Hidden) -> ApiError:
    server_says = _server_text(body, hidden)
    if status in (401, 403):
        verdict = "rejected the API key" if status == 401 else "refused this API key permission"
        # With what the server says of it, and its remedy: a 403 may be of one object only (a key may read
        # some, not others), where changing a key that read the others mends nothing.
        said = f": {server_says}" if server_says else ""
        # An object's path (`/v1/experiment/<id>/fetch`), not a listing's (`/v1/project`).
        one_object = status == 403 and path.count("/") >= 3
        scope = "what the key may read (it may be refused this object alone), " if one_object else ""
        return AuthError(
            f"Braintrust {verdict} (HTTP {status} on {method} {path}{said}). "
            # The key and URL may come from variables, flags or a Dagster resource's fields: each named.
            f"Check {scope}the API key given (BRAINTRUST_API_KEY by default) and the API URL "
            f"(BRAINTRUST_API_URL by default).{_key_slip(hidden.key) if status == 401 else ''}",
            status=status,
            said=server_says,
        )
    if status == 404:
        return NotFoundError(f"{method} {path}: not found (HTTP 404). {server_says}".strip(), status=status)
    if status == 413:
        return PayloadTooLarge(f"{method} {path}: request too large (HTTP 413)", status=status)
    if status == 431 and len(hidden.key) > _LONGEST_LIKELY_KEY:
        # A file's whole content given as the key (`BRAINTRUST_API_KEY=$(cat wrong-file)`): a front end's
        # web page answered it, and the message sent the user to the URL.
        return RequestError(
            f"{method} {path} was rejected (HTTP 431: its headers are too large): the API key given is "
            f"{len(hidden.key):,} characters long; give the key alone (BRAINTRUST_API_KEY by default)",
            status=status,
        )
    return RequestError(f"{method} {path} was rejected (HTTP {status}): {server_says}", status=status)


# Longer than any API key: a key past it, refused for its headers' size, is named as the cause.
_LONGEST_LIKELY_KEY = 1024


def _key_slip(key: str) -> str:
    """What a rejected key holds besides a key, never the key itself: the quotes an env file keeps
    (docker's --env-file, systemd's), the header's scheme, a variable's name: each rejected as "Invalid
    API key", nothing more."""
    if key[:1] in ("'", '"') or key[-1:] in ("'", '"'):
        slip = "is quoted (the quotes are part of the value: an env file's?)"
    elif key.lower().startswith("bearer "):
        slip = "starts with 'Bearer ', which bt-sync sends itself"
    elif _ASSIGNMENT.match(key):
        slip = "starts with a variable's name and '=' (a whole line of an env file?)"
    else:
        return ""
    return f" The key given {slip}: give the key alone."


def _server_text(body: bytes | bytearray, hidden: _Hidden) -> str:
    """What an error's body says, for its one line, the key hidden: a web page's markup would say nothing
    useful."""
    if _is_web_page(body):
        return "The answer is a web page, not Braintrust's JSON: is the API URL a Braintrust API?"
    return _key_hidden(body, hidden, _SERVER_TEXT_CHARS).strip()


def _is_web_page(body: bytes | bytearray) -> bool:
    return bool(_WEB_PAGE.match(body[:4096].decode("utf-8", "replace").lstrip("\ufeff").strip()))


def _key_hidden(body: bytes | bytearray, hidden: _Hidden, chars: int) -> str:
    """The first `chars` characters of the body's text, the key hidden.

    The key is hidden before the text is cut short: a key quoted across the cut would show in part. So
    the text hidden reaches past the characters kept by a key's longest spelling (a JSON escape takes up
    to 12 characters a character), or holds the whole body: a key cut where the decoding stops is past
    them. Each key hidden shortens it: the decoding then goes on.
    """
    reach = chars + 12 * hidden.longest
    decoded = reach * 4  # characters of up to 4 bytes
    while True:
        text = hidden.within(body[:decoded].decode("utf-8", "replace").lstrip("\ufeff").strip())
        if len(text) > reach or decoded >= len(body):
            return text[:chars]
        decoded *= 2


@dataclass(frozen=True)
class _Hidden:
    """What no message may show of what a server sent: the API key, and the credentials of the proxy
    requests go through (a proxy's error page may list the request's headers, its `Proxy-Authorization`
    among them).

    Args:
        key: the API key.
        proxy: the proxy's credentials, in the spellings a message may hold them (`uri_secrets`).
    """

    key: str
    proxy: tuple[str, ...] = ()

    @property
    def longest(self) -> int:
        """The length of the longest secret."""
        return max(map(len, (self.key, *self.proxy)))

    def within(self, text: str) -> str:
        """`text`, which quotes what a server sent, with the secrets hidden (and the credentials of URLs in
        it)."""
        return hide_short_secret(scrub(text, (self.key, *self.proxy)), self.key)


def _describe(error: BaseException) -> str:
    if isinstance(error, RetryableResponse):
        return f"last answer HTTP {error.status}"
    return f"last error: {type(error).__name__}" + (f": {error}" if str(error) else "")
