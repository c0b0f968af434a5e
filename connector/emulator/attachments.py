"""Attachments, as the SDK uploads and reads them: a signed URL to upload to, a status, a download URL.

A `braintrust.Attachment` in a logged row is uploaded when the logger flushes (SDK
`Attachment._init_uploader`): `POST /attachment` hands out a signed object-storage URL for the
attachment's key (here the emulator's own `PUT /_emulator/attachments/<key>`), the SDK uploads
there, then reports how it went with `POST /attachment/status`. Reading one back
(`ReadonlyAttachment.data`) asks `GET /attachment` for its status and a download URL. The row
itself holds only the reference (`{"type": "braintrust_attachment", "key": ..., ...}`), which is
what a sync lands. Without these endpoints every flush of a row with an attachment raised.

Attachments are held in memory, as overflow uploads are: an emulator restarted from `--state`
keeps the rows and their references, not the attachments' bytes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from connector.emulator.errors import Rejected, bad_request

ATTACHMENT_PATH = "/_emulator/attachments/"
# The type of an attachment whose upload URL was never asked for.
_UNKNOWN_TYPE = "application/octet-stream"
# `AttachmentStatus.upload_status` in the SDK.
_UPLOAD_STATUSES = ("uploading", "done", "error")


@dataclass
class _Attachment:
    content_type: str
    body: bytes | None = None
    status: dict[str, Any] = field(default_factory=lambda: {"upload_status": "uploading"})


class Attachments:
    """The attachments whose upload was asked for, by key: their type, bytes and upload status."""

    def __init__(self) -> None:
        self._attachments: dict[str, _Attachment] = {}
        self._lock = threading.Lock()

    def expect(self, key: str, content_type: str) -> None:
        """Make ready for an upload under `key` (asking again starts it over)."""
        with self._lock:
            self._attachments[key] = _Attachment(content_type)

    def put(self, key: str, body: bytes) -> None:
        """Keep the uploaded bytes of `key`.

        Raises:
            Rejected: 404 for a key no upload was asked for.
        """
        with self._lock:
            self._find(key).body = body

    def report(self, key: str, status: Any) -> dict[str, Any]:
        """Record the status the SDK reports for `key`'s upload, and return it: for any key, as the SDK
        reports an `error` status also when asking for the upload URL failed.

        Raises:
            Rejected: 400 for a status that is not the SDK's.
        """
        if not isinstance(status, dict) or status.get("upload_status") not in _UPLOAD_STATUSES:
            raise bad_request(f"status.upload_status must be one of {', '.join(_UPLOAD_STATUSES)}")
        with self._lock:
            self._attachments.setdefault(key, _Attachment(_UNKNOWN_TYPE)).status = status
        return status

    def status(self, key: str) -> dict[str, Any]:
        """The last status reported for `key`'s upload.

        Raises:
            Rejected: 404 for an unknown key.
        """
        with self._lock:
            return self._find(key).status

    def download(self, key: str) -> tuple[bytes, str]:
        """The bytes uploaded under `key`, and their content type.

        Raises:
            Rejected: 404 for an unknown key, or one whose bytes never arrived.
        """
        with self._lock:
            attachment = self._find(key)
        if attachment.body is None:
            raise Rejected(404, f"attachment {key} was never uploaded")
        return attachment.body, attachment.content_type

    def _find(self, key: str) -> _Attachment:
        found = self._attachments.get(key)
        if found is None:
            raise Rejected(404, f"no attachment {key}: ask POST /attachment for an upload URL first")
        return found
