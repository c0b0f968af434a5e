"""The HTTP layer: a threaded HTTP/1.1 server with auth and fault injection in front of the routes.

Built on `http.server` rather than a framework because faults need the raw
socket: closing it without a response, or after half a body.
"""

from __future__ import annotations

import contextlib
import gzip
import hmac
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

from connector.emulator.attachments import ATTACHMENT_PATH, Attachments
from connector.emulator.errors import Rejected
from connector.emulator.faults import FaultPlan, FaultRule
from connector.emulator.overflow import MAX_UPLOAD_BYTES, UPLOAD_PATH, OverflowUploads
from connector.emulator.routes import Call, Reply, Route, find_route
from connector.emulator.stats import Stats
from connector.emulator.store import Store

logger = logging.getLogger(__name__)

# A request with this suffix on the API key is authenticated but may only read (answers 403 to writes).
READ_ONLY_SUFFIX = "-readonly"
_DRAIN_CHUNK = 1 << 20


class Backend(Protocol):
    """What the server needs from the `Emulator` that owns it."""

    api_key: str
    max_request_bytes: int
    url: str
    store: Store
    faults: FaultPlan
    stats: Stats
    uploads: OverflowUploads
    attachments: Attachments


class EmulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server that can cut its open keep-alive connections on stop."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        # Requests are answered one at a time; their threads wait on the network side by side. Python
        # runs one thread at a time anyway, and four threads taking the interpreter from each other in
        # turns (a push's concurrent inserts) cost the emulator a fifth more CPU, measured, than one.
        self.answering = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:  # `::1`: an IPv4 socket failed to bind it, "Name or service not known"
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection, so clients holding keep-alive sockets see the server gone."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are routine (timeouts, tests of faults).
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bt-sync-emulator"
    sys_version = ""
    # Idle keep-alive connections give their thread back after this many seconds.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm and delayed ACKs add ~40 ms to small responses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and the CLI decide what to print."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        # The server is always an EmulatorServer; the base class types it as any socketserver's.
        backend = cast(EmulatorServer, self.server).backend
        url = urlsplit(self.path)
        path = unquote(url.path).rstrip("/") or "/"
        # An upload (an overflowing write, an attachment) goes where object storage would take it.
        body = self._read_body(
            MAX_UPLOAD_BYTES if path.startswith((UPLOAD_PATH, ATTACHMENT_PATH)) else backend.max_request_bytes
        )
        if body is None:
            return
        try:
            route, params = find_route(self.command, path)
        except Rejected as rejected:
            self._send(Reply.error(rejected.status, rejected.message))
            return
        refusal = None if route.public else self._refusal(backend.api_key, route)
        if refusal is not None:
            self._send(refusal)
            return
        backend.stats.count_request(self.command, route.name)
        fault = None if route.admin else backend.faults.take(self.command, path)
        call = Call(
            store=backend.store,
            faults=backend.faults,
            stats=backend.stats,
            uploads=backend.uploads,
            attachments=backend.attachments,
            max_request_bytes=backend.max_request_bytes,
            params=params,
            query=parse_qs(url.query),
            body=body,
            base_url=f"http://{self.headers['Host']}" if self.headers["Host"] else backend.url,
            repeat_cursor=fault is not None and fault.kind == "repeat_cursor",
            empty_page=fault is not None and fault.kind == "empty_page",
        )
        with backend.stats.serving(route.name):
            self._respond(route, call, fault)

    def _respond(self, route: Route, call: Call, fault: FaultRule | None) -> None:
        kind = None if fault is None else fault.kind
        if fault is not None and kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and kind == "status":
            message = f"injected fault: HTTP {fault.status}" if fault.body is None else fault.body
            self._send(Reply.error(fault.status, message, fault.retry_after))
        elif kind == "drop":
            self.close_connection = True
        elif fault is not None and kind == "body":
            self._send(Reply(200, (fault.body or "").encode()))
        elif kind == "truncate" and route.writes:
            # A truncated write is never applied: the client cannot know whether it was.
            self._send(Reply(200, b'{"message":"truncated; the write was not applied"}'), truncate=True)
        else:
            with cast(EmulatorServer, self.server).answering:
                reply = _run(route, call)
            if kind == "drop_after_apply":
                self.close_connection = True
            else:
                self._send(reply, truncate=kind == "truncate", compress=kind == "gzip")

    def _refusal(self, api_key: str, route: Route) -> Reply | None:
        scheme, _, token = (self.headers["Authorization"] or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Reply.error(401, "No API key: send the header 'Authorization: Bearer <your API key>'")
        if hmac.compare_digest(token.encode(), api_key.encode()):
            return None
        if hmac.compare_digest(token.encode(), (api_key + READ_ONLY_SUFFIX).encode()):
            return (
                Reply.error(403, "This API key may only read; the request writes") if route.writes else None
            )
        return Reply.error(401, "Invalid API key: check the key you sent")

    def _read_body(self, limit: int) -> bytes | None:
        """Return the request body, or None after answering a request whose body cannot be served."""
        if "chunked" in (self.headers["Transfer-Encoding"] or "").lower():
            self.close_connection = True
            self._send(Reply.error(411, "Send the request body with a Content-Length"))
            return None
        try:
            length = int(self.headers["Content-Length"] or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self._send(Reply.error(400, "Content-Length is not a number of bytes"))
            return None
        if length > limit:
            # Read it anyway so the client gets the 413 instead of a reset while still sending.
            while length > 0 and (chunk := self.rfile.read(min(length, _DRAIN_CHUNK))):
                length -= len(chunk)
            self._send(Reply.error(413, "Request Too Long"))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply, *, truncate: bool = False, compress: bool = False) -> None:
        body = gzip.compress(reply.body, compresslevel=1) if compress else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        if compress:
            self.send_header("Content-Encoding", "gzip")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)


def _run(route: Route, call: Call) -> Reply:
    try:
        return route.handler(call)
    except Rejected as rejected:
        return Reply.error(rejected.status, rejected.message)
    except Exception:
        logger.exception("emulator endpoint %s failed", route.name)
        return Reply.error(500, "Internal emulator error")
