"""Options shared by several commands, and turning them into settings.

Flags default to None so that an absent flag falls through to the
environment, then to the default (CLI flag > environment > default).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from connector.cli.app import json_output

if TYPE_CHECKING:
    from connector.config import ApiSettings, WarehouseSettings


def path_value(flag: str, *, file: bool = False) -> dict[str, Any]:
    """How a path flag's value is parsed (typer's `parser` and `metavar`): an empty one is refused, and
    one naming another place than meant (`config.refuse_misplaced_path`), and a `file`'s ending with a
    slash, which names a directory (`--duckdb wh/` made a DuckDB file named `wh`).

    Empty, the flag would mean the current directory: `--state-dir "$DIR"` with `DIR` unset would put a
    worker's scratch, or an emulator's data, where the command happens to run.
    """

    def parse(text: str | Path) -> Path:  # a default (`demo`'s) comes as a path already
        from connector.config import refuse_directory_named, refuse_misplaced_path
        from connector.errors import ConfigError

        if not str(text).strip():
            raise ConfigError(f"invalid setting: {flag}: is empty: give a path")
        try:
            # Push's `--state-dir` and `--rejects`, and the emulator's `--state`, made `./~/st` and `st `.
            refuse_misplaced_path(str(text))
            if file:
                refuse_directory_named(str(text))
        except ValueError as error:
            raise ConfigError(f"invalid setting: {flag}: {error}") from None
        return Path(_not_a_flag(flag, str(text)))

    # Shown in the help as typer shows a plain path.
    return {"parser": parse, "metavar": "<path>"}


def _not_a_flag(flag: str, text: str, *, key: bool = False) -> str:
    """`text`, the value given to `flag`, unless it looks like a flag given after it: `--parquet
    --no-parquet` took the second flag for a path (and `--duckdb --parquet x` would create a file named
    `--parquet`, `--api-key --json` sent `--json` as the key). Given as `--parquet=--name`, it is meant as
    the value.

    Args:
        key: `flag` takes a key, whose text is not quoted (it may be the key after all); else a path.
    """
    if text.startswith("--") and f"{flag}={text}" not in sys.argv[1:]:
        from connector.errors import ConfigError

        if key:
            raise ConfigError(
                f"invalid setting: {flag} is followed by an option, not by a key: give a key after it "
                "(joined to it by = for one starting with --)"
            )
        raise ConfigError(
            f"invalid setting: {flag}: {text!r} looks like an option, not its value: give {flag} a path "
            f"({flag}={text} or ./{text} for a path of that name)"
        )
    return text


def key_given(text: str) -> str:
    """The value given to `--api-key`, unless it is an option given in its place (`_not_a_flag`)."""
    return _not_a_flag("--api-key", text, key=True)


ApiUrlOption = typer.Option(None, "--api-url", help="Braintrust API URL (env: BRAINTRUST_API_URL).")
ApiKeyOption = typer.Option(
    None,
    "--api-key",
    parser=key_given,
    metavar="<str>",
    help="Braintrust API key (env: BRAINTRUST_API_KEY). Prefer the environment variable.",
)
TimeoutOption = typer.Option(
    None,
    "--timeout",
    help="Seconds to wait for each API response (env: BT_SYNC_TIMEOUT; default 60, at most a day).",
)
DuckDbOption = typer.Option(
    None,
    "--duckdb",
    **path_value("--duckdb", file=True),
    help="DuckDB file of views analysts open (env: BT_SYNC_DUCKDB; default ./data/braintrust.duckdb).",
)
ParquetOption = typer.Option(
    None,
    "--parquet",
    parser=lambda text: _not_a_flag("--parquet", text),
    metavar="<str>",
    help="Where the tables' Parquet files go: a directory or s3://bucket/prefix "
    "(env: BT_SYNC_PARQUET; default ./data/parquet).",
)
NoParquetOption = typer.Option(
    False, "--no-parquet", help="Keep the Parquet files in a private directory beside the DuckDB file."
)
DestinationOption = typer.Option(
    None, "--destination", help="duckdb (Parquet files + DuckDB views) or iceberg (env: BT_SYNC_DESTINATION)."
)
IcebergCatalogOption = typer.Option(
    None,
    "--iceberg-catalog",
    help="pyiceberg SQL catalog URI (sqlite:///..., postgresql+psycopg://...) or a .pyiceberg.yaml "
    "catalog name (env: BT_SYNC_ICEBERG_CATALOG).",
)
IcebergWarehouseOption = typer.Option(
    None,
    "--iceberg-warehouse",
    help="Where Iceberg data files go: a path or s3://... (env: BT_SYNC_ICEBERG_WAREHOUSE).",
)
IcebergNamespaceOption = typer.Option(
    None,
    "--iceberg-namespace",
    help="Iceberg namespace of the tables (env: BT_SYNC_ICEBERG_NAMESPACE; default braintrust).",
)
StateDirOption = typer.Option(
    None,
    "--state-dir",
    **path_value("--state-dir"),
    help="This machine's scratch: staged pages and checkpoints "
    "(env: BT_SYNC_STATE_DIR; default ./data/state).",
)
JsonOption = typer.Option(
    False,
    "--json",
    help="Print a machine-readable JSON summary instead of tables (on failure: the error, as JSON).",
    callback=json_output.request,
    # Before the other flags, wherever it is given: an error in one of them is then printed as JSON.
    is_eager=True,
)


def api_settings(api_url: str | None, api_key: str | None, timeout: float | None = None) -> ApiSettings:
    """Build API settings from flags given on the command line."""
    from connector.config import ApiSettings

    return ApiSettings(**_given(api_url=api_url, api_key=api_key, timeout_s=timeout))


def warehouse_settings(
    *,
    duckdb: Path | None = None,
    parquet: str | None = None,
    no_parquet: bool = False,
    destination: str | None = None,
    iceberg_catalog: str | None = None,
    iceberg_warehouse: str | None = None,
    iceberg_namespace: str | None = None,
    state_dir: Path | None = None,
    takes_destination: bool = True,
) -> WarehouseSettings:
    """Build warehouse settings; `--no-parquet` wins over the environment. `takes_destination`: the
    command has a `--destination` flag (`push` has not), for the remedy its messages give.

    Raises:
        ConfigError: `--parquet` and `--no-parquet` were both given.
    """
    from connector.config import DestinationKind, WarehouseSettings
    from connector.errors import ConfigError

    if no_parquet and parquet is not None:
        raise ConfigError("invalid setting: --parquet and --no-parquet exclude each other: give one")

    flags = _given(
        duckdb_path=duckdb,
        parquet_root=parquet,
        destination=destination,
        iceberg_catalog=iceberg_catalog,
        iceberg_warehouse=iceberg_warehouse,
        iceberg_namespace=iceberg_namespace,
        state_dir=state_dir,
    )
    if no_parquet:  # given, None wins over the environment: an empty BT_SYNC_PARQUET was refused despite it
        flags["parquet_root"] = None
    settings = WarehouseSettings(**flags)
    duckdb_flags = [
        flag for flag, given in (("--duckdb", duckdb), ("--parquet", parquet)) if given is not None
    ]
    if no_parquet:
        duckdb_flags.append("--no-parquet")
    if duckdb_flags and settings.destination is not DestinationKind.DUCKDB:
        # An Iceberg destination set in the environment would take the command elsewhere, silently.
        given = " and ".join(duckdb_flags)
        name = "names" if len(duckdb_flags) == 1 else "name"
        where, remedy = (
            ("--destination, BT_SYNC_DESTINATION", "pass --destination duckdb")
            if takes_destination
            else ("BT_SYNC_DESTINATION", "set BT_SYNC_DESTINATION to duckdb (or unset it)")
        )
        raise ConfigError(
            f"invalid setting: {given} {name} the duckdb destination's files, but the destination is "
            f"{settings.destination} ({where}): {remedy}, or leave out {given}"
        )
    if settings.destination is DestinationKind.DUCKDB:
        from connector.config import setting_named

        _check_duckdb_paths(settings, setting_named("duckdb_path", "--duckdb", duckdb))
    return settings


def _check_duckdb_paths(settings: WarehouseSettings, named: str) -> None:
    """Refuse a DuckDB file (`named` so in messages) or tables' directory that cannot be one, before any
    work: `status`, `sql` and `maintain` took a directory for the file and answered from the tables alone.

    Raises:
        ConfigError: the file is a directory, or a file stands where a directory is needed.
    """
    from connector.config import check_duckdb_file
    from connector.errors import ConfigError, in_the_way_of, loops

    check_duckdb_file(settings.duckdb_path, named)
    if (in_the_way := in_the_way_of(settings.duckdb_path.parent)) is not None:
        raise ConfigError(f"{named} {settings.duckdb_path}: {in_the_way}")
    # The Parquet root (or the tables' directory beside the DuckDB file): a sync failed only once the API
    # had been asked, and as a failure of the warehouse rather than of the command line.
    tables = settings.tables_root.removeprefix("file://")
    if "://" in tables:
        return
    check_apart(settings.duckdb_path, Path(tables))
    if loops(Path(tables)):  # a traceback from the file system's layer
        raise ConfigError(
            f"the tables' directory {tables} leads into a loop of symbolic links: name a directory"
        )
    if (in_the_way := in_the_way_of(Path(tables))) is not None:
        raise ConfigError(f"the tables' directory {tables}: {in_the_way}")
    from connector.destinations.filesystem import Root
    from connector.destinations.parquet_tree import check_tree_is_ours
    from connector.errors import WarehouseError

    try:
        check_tree_is_ours(Root(tables))
    except WarehouseError as error:
        raise ConfigError(str(error)) from None


def check_destination_writable(settings: WarehouseSettings) -> None:
    """Refuse a DuckDB file or local tables' directory that nothing can be written beside or in, before a
    command that writes them asks the API anything (`check_writable`).

    Raises:
        ConfigError: naming the path and why.
    """
    from connector.config import DestinationKind, check_name_fits, check_writable
    from connector.destinations.views import NAME_WRITTEN_BESIDE

    if settings.destination is not DestinationKind.DUCKDB:
        return
    check_writable("--duckdb", settings.duckdb_path)
    check_name_fits("--duckdb", settings.duckdb_path, NAME_WRITTEN_BESIDE)
    check_tables_writable(settings)


def check_tables_writable(settings: WarehouseSettings) -> None:
    """Refuse a local tables' directory (the DuckDB destination's) that nothing can be written in
    (`check_writable`); a remote one is left to its store.

    Raises:
        ConfigError: naming the path and why.
    """
    from connector.config import DestinationKind, check_writable

    tables = settings.tables_root.removeprefix("file://")
    if settings.destination is DestinationKind.DUCKDB and "://" not in tables:
        flag = "--parquet" if settings.parquet_root is not None else "the tables' directory"
        check_writable(flag, Path(tables))


def check_apart(duckdb: Path, parquet: Path) -> None:
    """Refuse a DuckDB file and a Parquet root that overlap: one path given as both, the root inside the
    file's path, or the file inside a table's directory of the root. The tree was written there, then the
    file could not be ("Is a directory", "move it away" of a directory the sync had just made), exit 1.

    Raises:
        ConfigError: they overlap, said how.
    """
    from connector.destinations.parquet_tree import TREE_DIRECTORIES
    from connector.errors import ConfigError

    file, root = Path(os.path.realpath(duckdb)), Path(os.path.realpath(parquet))  # through links too
    if file == root:
        raise ConfigError(
            f"--duckdb and --parquet both name {duckdb}: the DuckDB file goes beside the tables' directory, "
            "not in its place: give each a path of its own"
        )
    if root.is_relative_to(file):
        raise ConfigError(
            f"--parquet {parquet} is inside --duckdb {duckdb}, which names a file: the DuckDB file goes "
            "beside the tables' directory: give each a path of its own"
        )
    if file.is_relative_to(root) and (entry := file.relative_to(root).parts[0]) in TREE_DIRECTORIES:
        raise ConfigError(
            f"--duckdb {duckdb} lies where the tables' directory {parquet} keeps {entry}: put the DuckDB "
            "file beside the tables' directory"
        )


def _given(**flags: Any) -> dict[str, Any]:
    return {name: value for name, value in flags.items() if value is not None}
