"""Optional persistence: every write is appended to a JSON-lines file and replayed on start."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector.emulator import json_text

logger = logging.getLogger(__name__)


class ForeignJournal(Exception):
    """The state directory's journal holds lines, none of them a record the emulator wrote."""


class Journal:
    """An append-only JSON-lines file of write records in `directory`.

    The records are the effects of writes (the exact versions stored, with their
    `_xact_id`s), not the requests, so a replay reproduces the same ids and
    timestamps instead of minting new ones.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "journal.jsonl"
        # The file ends in a record a crash tore mid-append: the next one must start a line of its own.
        self._torn_tail = False
        # Lines `records` read whole (ending in a line break), records or not.
        self.whole_lines = 0

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record, in order; a line that is not one is skipped with a warning.

        Only a crash mid-append tears a record, and then no client was told it was written. The file
        is never rewritten: another emulator may be appending to it.
        """
        if not self.path.exists():
            return
        line = b""
        with self.path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                self.whole_lines += line.endswith(b"\n")
                try:
                    yield json_text.loads(line)
                except json.JSONDecodeError:
                    logger.warning("ignoring unreadable line %d of %s", number, self.path)
        self._torn_tail = not line.endswith(b"\n") and bool(line)

    def append(self, record: bytes) -> None:
        """Append one serialized record (a JSON object without a newline)."""
        start = b"\n" if self._torn_tail else b""
        try:
            with self.path.open("ab") as file:
                file.write(start + record + b"\n")
        except OSError:
            self._torn_tail = True  # written in part, perhaps (a full disk): the next record starts afresh
            raise
        self._torn_tail = False
