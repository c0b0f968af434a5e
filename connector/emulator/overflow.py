"""The SDK's path for writes over the request-size limit: `/logs3/overflow`, an upload, a reference.

A `GET /version` that advertises `logs3_payload_max_bytes` tells the SDK to send a
`/logs3` body over that size out of band (SDK `_submit_logs_request`): it asks
`POST /logs3/overflow` for an upload URL, sends the body there (Braintrust hands out
a signed object-storage URL; here it is the emulator's own `PUT /_emulator/uploads/<key>`),
then posts `{"rows": {"type": "logs3_overflow", "key": <key>}, ...}` to `/logs3`.
Without this path, a span over the limit (a large document or image in a span) got a
413 that the SDK does not retry, and the row was lost.
"""

from __future__ import annotations

import threading
import uuid

from connector.emulator.errors import Rejected, bad_request

# The largest body one upload takes: Braintrust's object storage takes far more; an emulator holds
# uploads in memory until the reference to them arrives.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
UPLOAD_PATH = "/_emulator/uploads/"
# The `type` of a `/logs3` body's `rows` when they are a reference to an upload (SDK
# `LOGS3_OVERFLOW_REFERENCE_TYPE`).
REFERENCE_TYPE = "logs3_overflow"


class OverflowUploads:
    """Upload keys handed out, and the bodies uploaded under them until a `/logs3` reference takes them."""

    def __init__(self) -> None:
        self._bodies: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def new_key(self) -> str:
        """A key for one upload."""
        key = f"logs3-overflow/{uuid.uuid4().hex}"
        with self._lock:
            self._bodies[key] = None
        return key

    def put(self, key: str, body: bytes) -> None:
        """Keep `body` under `key`.

        Raises:
            Rejected: 404 for a key never handed out, or already taken.
        """
        with self._lock:
            if key not in self._bodies:
                raise Rejected(404, f"no upload is expected under {key}: ask POST /logs3/overflow for one")
            self._bodies[key] = body

    def take(self, reference: object) -> bytes:
        """The body a `/logs3` reference names, forgotten once taken.

        Raises:
            Rejected: 400 for a malformed reference, or one naming no upload.
        """
        key = reference.get("key") if isinstance(reference, dict) else None
        if (
            not isinstance(reference, dict)
            or reference.get("type") != REFERENCE_TYPE
            or not isinstance(key, str)
        ):
            raise bad_request(
                f'rows must be a list, or {{"type": "{REFERENCE_TYPE}", "key": "<upload key>"}}'
            )
        with self._lock:
            body = self._bodies.pop(key, None)
        if body is None:
            raise bad_request(f"no upload under {key}: upload the rows to the URL /logs3/overflow gave first")
        return body
