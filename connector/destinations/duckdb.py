"""The DuckDB destination: the tables as a tree of Parquet files, and a DuckDB file of views over them.

Analysts open the DuckDB file (`BT_SYNC_DUCKDB`) from any DuckDB 1.4 or newer,
read-only or not, for as long as they like: syncs write only the Parquet
files, so neither side ever waits for the other.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import duckdb

from connector.destinations.parquet_tree import ParquetTree
from connector.destinations.views import (
    HTTPFS_MISSING,
    INSTALL_HTTPFS,
    UNKNOWN_ROOT,
    another_tree_shown,
    check_views_file,
    ensure_views_file,
    reader,
)
from connector.errors import ConfigError, WarehouseError

logger = logging.getLogger("bt_sync")


class DuckDbDestination(ParquetTree):
    """Parquet files under `root`, and the analysts' DuckDB file at `duckdb_path`.

    Args:
        duckdb_path: the DuckDB file of views.
        root: the Parquet tree: a local directory or an `s3://` URI.
        state_dir: this worker's scratch directory.

    Raises:
        ConfigError: the DuckDB file shows another tree's tables. Repointing its views would change
            every table the analysts read there, and reading this tree instead would answer a query or
            a status from tables the file does not show (another `--parquet`, or `--no-parquet`, given
            by mistake). A copied or moved warehouse's file is deleted first, to be written afresh.
    """

    def __init__(self, duckdb_path: Path, root: str, state_dir: Path) -> None:
        super().__init__(root, state_dir)
        self.duckdb_path = duckdb_path
        if duckdb_path.is_file() and (shown := another_tree_shown(duckdb_path, self.root)) is not None:
            # `--no-parquet` keeps the tables beside the file, in `<file>.tables`.
            beside = " (where --no-parquet keeps them)" if shown.endswith(".tables") else ""
            # The views name where they read: a moved file's, beside its old name (`--no-parquet`), too.
            use = f"give --parquet {shlex.quote(shown)} to use them, or" if shown != UNKNOWN_ROOT else "give"
            raise ConfigError(
                f"{duckdb_path} shows the tables of another Parquet root, {shown}{beside}, not "
                f"{self.root.display}: {use} another --duckdb file; for a copied or moved warehouse, delete "
                "it (it holds only views, no rows) and the next sync writes it afresh"
            )

    @property
    def description(self) -> str:
        """The DuckDB file, and where its tables' files are."""
        return f"{self.duckdb_path} (tables in {self.root.display})"

    @property
    def reader_follows_commits(self) -> bool:
        """True: each query of a reader that is not pinned reads the commit records afresh."""
        return True

    def reader(self, *, pinned: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection viewing the tree (it never opens the analysts' file)."""
        return reader(self.root, pinned=pinned)

    def prepare(self) -> None:
        """Make the tree readable, then create or refresh the DuckDB file's views."""
        # Looked at (and refused) before the tree is written: once, as the write relies on what it found.
        found = check_views_file(self.duckdb_path)
        super().prepare()
        try:
            ensure_views_file(found, self.root)
        except WarehouseError as error:
            if self.root.is_local:
                raise
            # Views over object storage need DuckDB's httpfs extension, which may not be installable here.
            then = (
                f"writes the file once httpfs is installed (run {INSTALL_HTTPFS})"
                if HTTPFS_MISSING in str(error)
                else "tries again"
            )
            logger.warning("%s; the tables are synced, and the next sync %s", error, then)
