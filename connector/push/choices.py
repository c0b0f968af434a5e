"""The choices of `bt-sync push` options: plain enums the command line can load without pydantic."""

from __future__ import annotations

from enum import StrEnum

# The suffixes of the compressed files `bt-sync push` reads (`data.csv.gz`).
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


class FileFormat(StrEnum):
    """The input formats `bt-sync push` reads."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"
    JSON = "json"


class OnError(StrEnum):
    """What a push does with an invalid row."""

    FAIL = "fail"
    SKIP = "skip"
