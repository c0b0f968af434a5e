"""The one way bt-sync keeps state on disk: a versioned pydantic model as JSON, replaced atomically.

Sync checkpoints, push checkpoints and each object's commit record are all
`StateFile`s. Each carries `format_version`, so a file written by another
version of bt-sync is refused with a message instead of being misread.
"""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from connector.errors import StateError


class StateFile(BaseModel):
    """Base of every JSON state file; subclasses set `FORMAT` and add fields."""

    model_config = ConfigDict(extra="forbid")

    FORMAT: ClassVar[int] = 1
    format_version: int = 0

    def model_post_init(self, context: object) -> None:
        if self.format_version == 0:
            self.format_version = self.FORMAT

    def dumps(self) -> bytes:
        """The file's bytes."""
        return self.model_dump_json().encode()

    @classmethod
    def loads(cls, data: bytes, where: str, remedy: str) -> Self:
        """Parse a state file's bytes.

        Args:
            data: the file's content.
            where: the file, for the message.
            remedy: what the user can do about an unreadable file.

        Raises:
            StateError: the file is corrupt, or from another version of bt-sync.
        """
        try:
            state = cls.model_validate_json(data)
        except ValidationError as error:
            raise StateError(f"{where} is unreadable ({_first_problem(error)}); {remedy}") from None
        if state.format_version != cls.FORMAT:
            raise StateError(
                f"{where} has format version {state.format_version}, this bt-sync reads {cls.FORMAT}; "
                f"{remedy}"
            )
        return state

    def save(self, path: Path, *, durable: bool = True) -> None:
        """Write to a local `path` atomically (a crash leaves the old or the new file, never half of one).

        `durable=False` skips flushing to disk: enough against a killed process, whose writes the OS
        still completes, for state whose loss in a power cut only means repeating safe work.
        """
        write_atomically(path, self.dumps(), durable=durable)

    @classmethod
    def load(cls, path: Path, remedy: str) -> Self | None:
        """Read a local state file, or None if there is none."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return cls.loads(data, str(path), remedy)


class WriteOverran(Exception):
    """A write was not ready to replace its file before the moment it had to (`write_atomically`)."""


def write_atomically(
    path: Path,
    data: bytes,
    *,
    durable: bool = True,
    temporary: Path | None = None,
    before: datetime | None = None,
) -> None:
    """Replace `path` with `data`: write a temporary file (synced to disk if `durable`), rename it over.

    Args:
        path: the file to replace.
        data: its new content.
        durable: sync the temporary file to disk before the rename.
        temporary: where the data is written first, beside `path` (default: `.NAME.tmp`).
        before: replace `path` only before this moment (`WriteOverran` otherwise).

    Raises:
        OSError: naming `path`; `path` is as it was, and the temporary file is gone.
        WriteOverran: `before` passed while the data was written; `path` is as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary or path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if before is not None and datetime.now(UTC) >= before:
            temporary.unlink()
            raise WriteOverran(f"{path} was not written before {before.isoformat()}")
        os.replace(temporary, path)
    except OSError as error:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        # A failed write names no file: a full disk says only "No space left on device".
        raise OSError(error.errno, error.strerror, str(path)) from None


def _first_problem(error: ValidationError) -> str:
    issue = error.errors()[0]
    where = ".".join(str(part) for part in issue["loc"])
    return f"{where}: {issue['msg']}" if where else issue["msg"]
