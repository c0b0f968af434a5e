"""`Emulator`: a local Braintrust-compatible API server, started in a thread or in the foreground."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from connector.emulator.attachments import Attachments
from connector.emulator.faults import FaultPlan
from connector.emulator.journal import Journal
from connector.emulator.overflow import OverflowUploads
from connector.emulator.seed import seed_loader
from connector.emulator.server import EmulatorServer
from connector.emulator.stats import Stats
from connector.emulator.store import Store

# AWS's API gateway limit, which Braintrust's API inherits (the SDK's default batch cap).
DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024


class Emulator:
    """A Braintrust API emulator serving an in-memory `Store` over HTTP on loopback.

    Args:
        api_key: the key clients must send as `Authorization: Bearer <key>`;
            `<key>-readonly` is accepted for reads and gets 403 on writes.
        seed: initial data: "empty", "demo" or "bench:N" (N generated log rows).
            Ignored when `state_dir` already holds data.
        state_dir: if set, writes are journaled there and replayed on the next start.
        xact_start: first `_xact_id` (then +1 per write) instead of time-based ids.
        org_name: name of the single organization.
        max_request_bytes: larger request bodies get 413; settable later too.

    Raises:
        ValueError: for an unknown seed.
    """

    def __init__(
        self,
        *,
        api_key: str = "bt-emulator-key",
        seed: str = "empty",
        state_dir: Path | None = None,
        xact_start: int | None = None,
        org_name: str = "emulator-org",
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        load_seed = seed_loader(seed)
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.url = ""
        self.store = Store(org_name=org_name, xact_start=xact_start)
        self.faults = FaultPlan()
        self.stats = Stats()
        self.uploads = OverflowUploads()
        self.attachments = Attachments()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        # Whether `state_dir` held data, served in place of the seed.
        self.restored = state_dir is not None and self.store.open_journal(Journal(state_dir))
        if not self.restored:
            load_seed(self.store)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL, e.g. "http://127.0.0.1:54321"."""
        if self._server is not None:
            raise RuntimeError(f"the emulator is already serving at {self.url}")
        server = self._bind(host, port)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="bt-emulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and cut open connections; the `store` stays usable."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    def serve_forever(self, host: str, port: int, ready: Callable[[str], None]) -> None:
        """Serve in the calling thread until interrupted (`bt-sync emulator`).

        Args:
            host: the address to listen on.
            port: the port, or 0 for a free one.
            ready: called with the base URL once listening, the port it picked included.
        """
        server = self._bind(host, port)
        ready(self.url)
        try:
            server.serve_forever()
        finally:
            self._server = None
            server.close_connections()
            server.server_close()

    def _bind(self, host: str, port: int) -> EmulatorServer:
        server = EmulatorServer((host, port), self)
        self._server = server
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address, in a URL
        self.url = f"http://{shown}:{server.server_address[1]}"
        return server

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
