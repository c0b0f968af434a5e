"""Keep a push's validated events on disk between its two passes, so the input is parsed once.

The first pass of a push reads, validates and maps every row before anything is
sent; the second sends the events. Reading and mapping the input again would
cost as much as the first pass (most of a push's CPU), so the first pass writes
each event here, with its row number, and the second reads them back. The file
is anonymous (unlinked at once), so a crash leaves nothing behind, and it lives
in the temporary directory (`TMPDIR`): it holds about as many bytes as the
events sent.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

# Each record: the row number, the event's length, then the event's JSON.
_HEADER = struct.Struct("<QI")
# A temporary file's default buffer is one disk block (4 KiB), about four events: a system call every
# few rows, half of the spool's cost. A larger buffer makes writing and reading back mostly copies.
_BUFFER_BYTES = 1 << 20


class EventSpool:
    """Row-numbered events written once and read back in order; a context manager that removes them."""

    def __init__(self) -> None:
        # Closed (and so removed) by `__exit__`: the spool outlives any one block of the push.
        self._file = tempfile.TemporaryFile(prefix="bt-sync-push-events-", buffering=_BUFFER_BYTES)  # noqa: SIM115

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()

    def extend(self, numbers: Sequence[int], events: Sequence[bytes]) -> None:
        """Add the event of each row: `events[i]` is row `numbers[i]`'s."""
        pack = _HEADER.pack
        records: list[bytes] = []
        for number, event in zip(numbers, events, strict=True):
            records += (pack(number, len(event)), event)
        # One write for many rows: a write per row costs more than the copy into the buffer.
        self._file.write(b"".join(records))

    def restart(self) -> None:
        """Forget every event: the input is being read again."""
        self._file.seek(0)
        self._file.truncate()

    def events(self) -> Iterator[tuple[int, bytes]]:
        """Every `(row number, event)` appended, in order."""
        self._file.flush()
        self._file.seek(0)
        # The file object buffers its reads: small reads of headers cost no system call each.
        while header := self._file.read(_HEADER.size):
            number, length = _HEADER.unpack(header)
            yield number, self._file.read(length)
