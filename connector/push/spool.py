"""Keep a push's validated events on disk between its two passes, so the input is parsed once.

The first pass of a push reads, validates and maps every row before anything is
sent; the second sends the events. Reading and mapping the input again would
cost as much as the first pass (most of a push's CPU), so the first pass writes
each batch of events here, as it will be sent, and the second reads the batches
back. The file is anonymous (unlinked at once), so a crash leaves nothing
behind, and it lives in the temporary directory (`TMPDIR`): it holds about as
many bytes as the events sent. A directory without that room stops the push with
an error naming it, before anything is sent.
"""

from __future__ import annotations

import errno
import struct
import tempfile
from array import array
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Self

from connector.errors import PushError, os_reason
from connector.push.batch import Batch

# Each record: the batch's number, its count of events and its body's bytes; then each event's row
# number, each event's length (both unsigned 64-bit) and the body. In the machine's byte order: the file
# never leaves the process that writes it.
_HEADER = struct.Struct("=QQQ")
_NUMBERS = "Q"
# A temporary file's default buffer is one disk block (4 KiB): a system call for every few events.
_BUFFER_BYTES = 1 << 20


class EventSpool:
    """Numbered batches of row-numbered events, written once and read back in order; a context manager
    that removes them."""

    def __init__(self) -> None:
        # Closed (and so removed) by `__exit__`: the spool outlives any one block of the push.
        self._file = tempfile.TemporaryFile(prefix="bt-sync-push-events-", buffering=_BUFFER_BYTES)  # noqa: SIM115

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Closing flushes the buffer, which fails again in a full directory; the raw file is closed (and
        # so removed) all the same, and the events it could not write are of no more use.
        with suppress(OSError):
            self._file.close()

    def append(self, batch: Batch) -> None:
        """Add a batch after those already added.

        Raises:
            PushError: the temporary directory has no room for it.
        """
        with _room_in_tempdir():
            self._file.write(_HEADER.pack(batch.number, len(batch.rows), len(batch.body)))
            self._file.write(array(_NUMBERS, batch.rows).tobytes())
            self._file.write(array(_NUMBERS, batch.sizes).tobytes())
            self._file.write(batch.body)

    def flush(self) -> None:
        """Write out what the buffer holds: a full directory fails here, not when the batches are read.

        Raises:
            PushError: the temporary directory has no room for the last batches added.
        """
        with _room_in_tempdir():
            self._file.flush()

    def restart(self) -> None:
        """Forget every batch: the input is being read again."""
        self._file.seek(0)
        self._file.truncate()

    def batches(self) -> Iterator[Batch]:
        """Every batch added, in order.

        Raises:
            PushError: the temporary directory has no room for the last batches added.
        """
        self.flush()
        self._file.seek(0)
        read = self._file.read
        while header := read(_HEADER.size):
            number, count, size = _HEADER.unpack(header)
            rows, sizes = array(_NUMBERS), array(_NUMBERS)
            rows.frombytes(read(rows.itemsize * count))
            sizes.frombytes(read(sizes.itemsize * count))
            yield Batch(number, rows.tolist(), read(size), sizes.tolist())


@contextmanager
def _room_in_tempdir() -> Iterator[None]:
    """Turn a failed write of the spool into an error that says where it is and how to give it room.

    The spool's file is anonymous: the system's reason alone ("No space left on device") names no path.
    Only the first pass writes it (`PushRun` flushes it at the end of the pass), so nothing was sent yet.
    """
    try:
        yield
    except OSError as error:
        # More room is no remedy for the process's file-size limit, which `os_reason` names.
        remedy = (
            "" if error.errno == errno.EFBIG else ": free space there or set TMPDIR to a directory with more"
        )
        raise PushError(
            f"cannot keep the checked events in {tempfile.gettempdir()}: {os_reason(error)}; a push keeps "
            f"them there, about as many bytes as it sends, until it ends{remedy} (nothing was sent)"
        ) from None
