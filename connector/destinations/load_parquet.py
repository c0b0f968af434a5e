"""Writing each object's deduplicated rows as one Parquet file, atomically.

Layout: `<root>/<table>/<key column>=<object id>/data.parquet` (hive style).
A file is written under a temporary name and moved into place, so a reader
of the directory sees either the previous or the new version of an object,
never a half-written one. The root may be a local path or any `pyarrow.fs`
URI (e.g. `s3://bucket/prefix?endpoint_override=...`).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connector.destinations.warehouse import arrow_reader
from connector.errors import WarehouseError
from schemas.tables import EventStream

DATA_FILE = "data.parquet"
_BATCH_ROWS = 10_000


class ParquetSink:
    """A Parquet dataset root.

    Args:
        root: a local directory or a `pyarrow.fs` URI.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        try:
            if "://" in root:
                self._fs, self._base = pafs.FileSystem.from_uri(root)
            else:
                self._fs, self._base = pafs.LocalFileSystem(), str(Path(root).resolve())
        except (OSError, ValueError) as error:
            raise WarehouseError(f"cannot use Parquet root {root!r}: {error}") from None
        self._base = self._base.rstrip("/")

    def object_dir(self, stream: EventStream, object_id: str) -> str:
        """The directory (in the sink's filesystem) holding the object's file."""
        return f"{self._base}/{stream.table}/{stream.key_column}={object_id}"

    def write_object(self, connection: duckdb.DuckDBPyConnection, stream: EventStream, object_id: str) -> int:
        """Replace the object's Parquet file with its current rows in DuckDB; returns the row count."""
        key = stream.key_column
        query = f'SELECT * EXCLUDE ({key}) FROM "{stream.table}" WHERE {key} = ?'
        reader = arrow_reader(connection, query, [object_id], _BATCH_ROWS)
        directory = self.object_dir(stream, object_id)
        temporary = f"{directory}/.{DATA_FILE}.{uuid.uuid4().hex}.tmp"
        rows = 0
        try:
            self._fs.create_dir(directory, recursive=True)
            with pq.ParquetWriter(
                temporary, reader.schema, filesystem=self._fs, compression="zstd"
            ) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            self._fs.move(temporary, f"{directory}/{DATA_FILE}")
        except OSError as error:
            _discard(self._fs, temporary)
            raise WarehouseError(f"cannot write Parquet under {self.root}: {error}") from None
        return rows

    def remove_object(self, stream: EventStream, object_id: str) -> None:
        """Remove an object's directory (the object was deleted upstream)."""
        try:
            self._fs.delete_dir(self.object_dir(stream, object_id))
        except FileNotFoundError:
            return
        except OSError as error:
            raise WarehouseError(f"cannot delete Parquet under {self.root}: {error}") from None


def _discard(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except OSError:
        return
