"""Optional persistence: every write is appended to a JSON-lines file and replayed on start."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector.emulator import json_text

logger = logging.getLogger(__name__)


class Journal:
    """An append-only JSON-lines file of write records in `directory`.

    The records are the effects of writes (the exact versions stored, with their
    `_xact_id`s), not the requests, so a replay reproduces the same ids and
    timestamps instead of minting new ones.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "journal.jsonl"

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, in order; a line torn by a crash mid-append ends them, and is cut off the file.

        Cut off, so that the next append starts a line of its own: glued to the torn one, it and every
        record after it would be unreadable at the next start.
        """
        if not self.path.exists():
            return
        kept = 0  # bytes of the whole records read
        with self.path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    try:
                        record = json_text.loads(line)
                    except json.JSONDecodeError:
                        # Only a crash mid-append leaves a torn line, and only the last one.
                        logger.warning("ignoring unreadable line %d of %s", number, self.path)
                        break
                    yield record
                kept += len(line)
        with self.path.open("r+b") as file:
            file.truncate(kept)
            file.seek(max(kept - 1, 0))
            if kept and file.read(1) != b"\n":
                file.write(b"\n")  # a whole record torn off only its newline

    def append(self, record: bytes) -> None:
        """Append one serialized record (a JSON object without a newline)."""
        with self.path.open("ab") as file:
            file.write(record + b"\n")
