"""Settings, read with the precedence CLI flag > environment > default (`connector.defaults`).

The CLI, Dagster, the demo, the benchmarks and the tests all build their
settings from these classes, and their parts from the settings (see `connector.wiring`).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from datetime import timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.defaults import (
    DEFAULT_API_URL,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_ICEBERG_NAMESPACE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PARQUET_ROOT,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT_S,
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_TIMEOUT_S,
    MAX_WINDOW_HOURS,
)
from connector.display import LOCALE_REMEDY, as_given, locale_cannot_read
from connector.errors import ConfigError, loops
from connector.redaction import redact

logger = logging.getLogger("bt_sync")


class _Settings(BaseSettings):
    # A field's name is a keyword argument; the environment is read by `_DocumentedVariables`.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _DocumentedVariables(settings_cls)


class _DocumentedVariables(PydanticBaseSettingsSource):
    """The environment, read by the names `_variables` gives each field, spelt exactly.

    pydantic-settings' own source reads names in any case (`bt_sync_duckdb`, left by an env-file loader,
    overrode BT_SYNC_DUCKDB, whichever came last in the environment) or, told to match case, the prefix
    and the field's name as written (`BT_SYNC_duckdb_path`).
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variables, name = read_from(field), variable_set(field)
        # Keyed by the documented name, as the keyword arguments are by pydantic-settings.
        return None if name is None else os.environ[name], variables[0] if variables else field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        fields = self.settings_cls.model_fields
        for field_name, field in fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        # A variable whose name differs from one read only in case is not read: said once.
        read = {name.upper(): name for field in fields.values() for name in read_from(field)}
        for name in os.environ:
            meant = read.get(name.upper(), name)
            if name != meant:
                _warn_unread(name, meant)
        return values


@cache  # once a process: settings are made again for each command's part, and each Dagster run
def _warn_unread(name: str, meant: str) -> None:
    logger.warning("%s is not read: variable names are case-sensitive, and bt-sync reads %s", name, meant)


def _variables(documented: str, field: str) -> AliasChoices:
    """The variables a setting is read from: its documented name, then `BT_SYNC_<FIELD>` (the first set
    wins, and the other is not read)."""
    alias = f"BT_SYNC_{field.upper()}"
    return AliasChoices(documented) if alias == documented else AliasChoices(documented, alias)


def read_from(setting: FieldInfo) -> list[str]:
    """The variables a setting is read from, in `_variables`'s order (none for a field of no variable)."""
    variables = setting.validation_alias
    return [str(name) for name in variables.choices] if isinstance(variables, AliasChoices) else []


def variable_set(setting: FieldInfo) -> str | None:
    """The variable a setting is read from in this environment: the first of `read_from`'s that is set."""
    return next((name for name in read_from(setting) if name in os.environ), None)


def _refuse_what_is_not_utf8(text: str, remedy: str = "") -> None:
    """Refuse bytes the shell passed that are not UTF-8, quoting them escaped and without credentials.

    Raises:
        ValueError: naming the first character that is not UTF-8.
    """
    try:
        text.encode()
    except UnicodeEncodeError as error:
        shown = redact(as_given(text))
        if locale_cannot_read(text):
            raise ValueError(f"'{shown}': {LOCALE_REMEDY}") from None
        raise ValueError(f"'{shown}' is not UTF-8 text (at character {error.start + 1}){remedy}") from None


def _refuse_blank_ends(text: str, what: str) -> None:
    """Refuse a value beginning or ending with a blank or a line break: a value read from a file's last
    line (a Kubernetes secret's, an env file's) ends with one, and a path so named made a directory
    beside the one meant, which no later command looked at.

    Raises:
        ValueError: it does, said which (a line break does not show in a message).
    """
    if text == text.strip():
        return
    edge = text[-1] if text[-1].isspace() else text[0]
    end = "ends" if text[-1].isspace() else "starts"
    if edge in "\r\n":
        blank, why = "a line break", " (a value read from a file's last line?)"
    else:
        blank, why = f"a blank (U+{ord(edge):04X})", ""
    # A path that truly holds it is refused too: one differing from another by a blank no one sees.
    raise ValueError(f"{end} with {blank}: give the {what} without it{why}")


# A SQLite catalog URI's scheme and the slashes before its file (`sqlite:///`, `sqlite+pysqlite:///`).
_SQLITE_FILE = re.compile(r"sqlite(\+\w+)?:///")
# `$HOME`, `${HOME}`, `%USERPROFILE%` at a path's start.
_UNEXPANDED_VARIABLE = re.compile(r"\$[A-Za-z_]\w*|\$\{[^}]*\}|%[A-Za-z_]\w*%")
# Object stores' URI schemes, whose first part names a bucket (a container).
_OBJECT_STORES = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "adl"})
# An object store's or the web's URI scheme without its two slashes (`s3:/bucket/x`, `gs:bucket`).
_URI_MISSING_SLASHES = re.compile(r"(s3[an]?|gs|gcs|az|abfss?|adl|hf|https?):(?!//)", re.IGNORECASE)


def refuse_misplaced_path(text: str) -> None:
    """Refuse a path that names another place than the one meant: one starting or ending with a blank
    or a line break (`_refuse_blank_ends`), or with a `~` no shell expanded (quoted, or from an env
    file, `~/bt/w.duckdb` made a directory named `~` where the command ran; `~user/x` too).

    Raises:
        ValueError: it does, said which.
    """
    _refuse_blank_ends(text, "path")
    # `~st` too: Python made `./~st`, DuckDB read it as the home directory's path with `st` glued on.
    if text.startswith("~"):
        raise ValueError(
            f"{text!r} starts with ~, which only a shell expands (unquoted): give the home directory's path "
            "($HOME)"
        )
    # From an env file (docker's --env-file, systemd's Environment=, a .env), which expand nothing: a
    # directory named `$HOME` was made where the command ran, and held the warehouse.
    if variable := _UNEXPANDED_VARIABLE.match(text):
        raise ValueError(
            f"{text!r} starts with {variable.group()}, a variable no shell expanded (an env file's value?): "
            f"give the path it stands for (./{text} for a name that starts so)"
        )
    # `s3:/bucket/bt` made a local directory named `s3:`, and held the warehouse without a word.
    if scheme := _URI_MISSING_SLASHES.match(text):
        written = f"{scheme.group(1)}://{text[scheme.end() :].lstrip('/')}"
        raise ValueError(
            f"{text!r} starts like a URI without the two slashes after {scheme.group()}: write {written!r} "
            f"(./{text} for a local name that starts so)"
        )


def refuse_directory_named(text: str) -> None:
    """Refuse a file's path ending with a slash, `.` or `..`: it names a directory (`--duckdb wh/` and
    `wh/.` were written as the file `wh`, where a directory was meant).

    Raises:
        ValueError: it does.
    """
    last = os.path.basename(text)
    if text and last in ("", ".", ".."):  # an empty one is refused as empty where it is read
        ending = last or text[-1]
        raise ValueError(f"{text!r} ends with {ending}, so it names a directory: give a file's path")


def _storage_uri(uri: str) -> str:
    """A URI of a place to keep files in, as pyarrow and pyiceberg read it: its scheme in lower case (they
    know no other: `S3://b` was "Unrecognized filesystem type"), and `file://localhost/x` as `file:///x`.

    Raises:
        ValueError: it names no such place: no bucket (`s3://`, `gs:///x`), which pyarrow failed on in
            its own words ("Path cannot start with a separator"); a web address, which no file system
            it knows serves; another machine's files (`file://host/x` was written into `./host/x`).
    """
    scheme, _, rest = uri.partition("://")
    scheme_read = scheme.lower()
    if scheme_read in ("http", "https"):
        raise ValueError(
            f"{uri!r} is a web address: files go in a directory or in object storage (s3://bucket/prefix)"
        )
    if scheme_read in _OBJECT_STORES and not rest.split("/", 1)[0]:
        raise ValueError(f"{uri!r} names no bucket: write {scheme}://bucket/prefix")
    if scheme_read == "file":
        if not rest.startswith(("/", "localhost/")):
            raise ValueError(
                f"{uri!r} names another machine: a file URI names this one's files, file:///path"
            )
        rest = rest.removeprefix("localhost")  # this machine, named
    return f"{scheme_read}://{rest}"


def header_safe_key(key: str) -> str:
    """An API key without the blanks around it, checked to fit an HTTP header (visible ASCII only).

    Raises:
        ValueError: the key holds another character; the message never quotes the key.
    """
    key = key.strip()
    for position, character in enumerate(key, start=1):
        if not " " <= character <= "~":
            kind = "a control character" if character.isascii() else "a non-ASCII character"
            where = f"at position {position} of {len(key)}"
            raise ValueError(f"holds {kind} ({where}), which no API key has: copy it again")
    return key


class ApiSettings(_Settings):
    """Where the Braintrust API is and how to call it.

    Args:
        api_url: base URL of the API (`BRAINTRUST_API_URL`).
        api_key: the API key (`BRAINTRUST_API_KEY`); a `SecretStr`, so it never
            shows in `repr`, logs or error messages.
        timeout_s: per-request timeout in seconds (`BT_SYNC_TIMEOUT`).
        max_attempts: attempts per request before a transient failure is raised (`BT_SYNC_MAX_ATTEMPTS`).
        backoff_initial_s: first retry wait (jittered, doubling), unless the server sends `Retry-After`.
        backoff_max_s: longest wait between two attempts.
    """

    api_url: str = Field(
        default=DEFAULT_API_URL, validation_alias=_variables("BRAINTRUST_API_URL", "api_url")
    )
    api_key: SecretStr | None = Field(
        default=None, validation_alias=_variables("BRAINTRUST_API_KEY", "api_key")
    )
    timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        validation_alias=_variables("BT_SYNC_TIMEOUT", "timeout_s"),
    )
    # Bounded: a wait of 1e300 s overflows the clock, and one of 1e10 never ends.
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=MAX_ATTEMPTS,
        validation_alias=_variables("BT_SYNC_MAX_ATTEMPTS", "max_attempts"),
    )
    backoff_initial_s: float = Field(
        default=0.5,
        ge=0,
        le=MAX_BACKOFF_S,
        allow_inf_nan=False,
        validation_alias=_variables("BT_SYNC_BACKOFF_INITIAL_S", "backoff_initial_s"),
    )
    backoff_max_s: float = Field(
        default=30.0,
        ge=0,
        le=MAX_BACKOFF_S,
        allow_inf_nan=False,
        validation_alias=_variables("BT_SYNC_BACKOFF_MAX_S", "backoff_max_s"),
    )

    @field_validator("api_key")
    @classmethod
    def _key_fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        # The key travels in an HTTP header, which holds visible ASCII only; httpx's refusal of anything
        # else quotes the header, key and all. The key itself is never part of the message.
        return None if value is None else SecretStr(header_safe_key(value.get_secret_value()))

    @field_validator("api_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        _refuse_what_is_not_utf8(value)
        if not value:
            raise ValueError("is empty: give the API's URL, such as https://api.braintrust.dev")
        _refuse_blank_ends(value, "URL")
        scheme, separator, rest = value.partition("://")
        # A scheme is read whatever its case (`HTTPS://`); httpx takes it in lower case.
        if not separator and not any(mark in value for mark in ".:/"):
            # No host's look (a dot, a port, a path): an API key given as the URL, say, whose text the
            # message must not show (BRAINTRUST_API_URL and BRAINTRUST_API_KEY swapped).
            raise ValueError(
                f"must start with http:// or https://, got {len(value)} characters with no host's dot, port "
                "or path (not shown: an API key given as the URL?)"
            )
        if not separator or scheme.lower() not in ("http", "https"):
            raise ValueError(f"must start with http:// or https://, got {redact(value)!r}")
        value = f"{scheme.lower()}://{rest}"
        if any(character.isspace() for character in value):
            # httpx would send it as it is, and the answer would read like an outage.
            raise ValueError(f"holds a space, which no URL does: {redact(value)!r}")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port beyond 65535 or not a number
        except ValueError as error:
            raise ValueError(f"is not a URL ({error}): {redact(value)!r}") from None
        if not parts.hostname:
            raise ValueError(f"names no host: {redact(value)!r}")
        if parts.username is not None or parts.password is not None:
            # httpx would send them as Basic credentials in place of the API key's Bearer header.
            raise ValueError(
                f"holds credentials ({redact(value)!r}): give the API key on its own (BRAINTRUST_API_KEY by "
                "default), not in the URL"
            )
        if "?" in value or "#" in value:
            # Paths are joined to it: `…?x=1/v1/project` would ask the server's root for a page.
            shown = redact(value)
            raise ValueError(f"holds a query or a fragment: give the API's base URL alone, not {shown}")
        return value.rstrip("/")


class DestinationKind(StrEnum):
    """Where synced tables land."""

    DUCKDB = "duckdb"
    ICEBERG = "iceberg"


# What DuckDB's glob patterns take as wildcards, and the backslash, which DuckDB takes as an escape in
# a pattern and as a separator in a file's path (a DuckDB file under `a\b` was written as `a/b`).
_GLOB_CHARACTERS = "*?[]\\"


class WarehouseSettings(_Settings):
    """Where synced data lands, and where a worker keeps its scratch.

    Args:
        destination: `duckdb` (Parquet files, a DuckDB file of views) or `iceberg` (`BT_SYNC_DESTINATION`).
        duckdb_path: the DuckDB file analysts open (`BT_SYNC_DUCKDB`).
        parquet_root: directory or `s3://bucket/prefix` holding the tables as Parquet (`BT_SYNC_PARQUET`);
            None keeps them in a private directory beside the DuckDB file (`--no-parquet`).
        state_dir: this worker's scratch: staged pages, checkpoints, push checkpoints (`BT_SYNC_STATE_DIR`).
        iceberg_catalog: a pyiceberg SQL catalog URI or a `.pyiceberg.yaml` catalog name
            (`BT_SYNC_ICEBERG_CATALOG`).
        iceberg_warehouse: where Iceberg data files go: a path or `s3://…` (`BT_SYNC_ICEBERG_WAREHOUSE`).
        iceberg_namespace: the Iceberg namespace of the tables (`BT_SYNC_ICEBERG_NAMESPACE`).
    """

    destination: DestinationKind = Field(
        default=DestinationKind.DUCKDB, validation_alias=_variables("BT_SYNC_DESTINATION", "destination")
    )
    duckdb_path: Path = Field(
        default=DEFAULT_DUCKDB_PATH, validation_alias=_variables("BT_SYNC_DUCKDB", "duckdb_path")
    )
    parquet_root: str | None = Field(
        default=DEFAULT_PARQUET_ROOT, validation_alias=_variables("BT_SYNC_PARQUET", "parquet_root")
    )
    state_dir: Path = Field(
        default=DEFAULT_STATE_DIR, validation_alias=_variables("BT_SYNC_STATE_DIR", "state_dir")
    )
    iceberg_catalog: str | None = Field(
        default=None, validation_alias=_variables("BT_SYNC_ICEBERG_CATALOG", "iceberg_catalog")
    )
    iceberg_warehouse: str | None = Field(
        default=None, validation_alias=_variables("BT_SYNC_ICEBERG_WAREHOUSE", "iceberg_warehouse")
    )
    iceberg_namespace: str = Field(
        default=DEFAULT_ICEBERG_NAMESPACE,
        validation_alias=_variables("BT_SYNC_ICEBERG_NAMESPACE", "iceberg_namespace"),
    )

    @field_validator("duckdb_path", "parquet_root", "state_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object, info: ValidationInfo) -> object:
        # An unset variable in a deployment's `BT_SYNC_PARQUET=$ROOT` would otherwise mean the current
        # directory, or no Parquet root: the analysts' views would point at new, empty tables.
        if isinstance(value, str | Path) and not str(value).strip():
            instead = " (or --no-parquet)" if info.field_name == "parquet_root" else ""
            raise ValueError(f"is empty: give a path{instead}")
        if isinstance(value, str | Path):
            refuse_misplaced_path(str(value))
        if isinstance(value, str) and info.field_name == "duckdb_path":  # a `Path` has lost its slash
            refuse_directory_named(value)
        return value

    @field_validator("iceberg_catalog", "iceberg_warehouse")
    @classmethod
    def _iceberg_ends(cls, value: str | None) -> str | None:
        # `cat.db\n` and `iw\n` were made beside the catalog and the warehouse meant; `~/wh`, at `./~/wh`.
        if value is not None:
            _refuse_blank_ends(value, "URI or path")
            # A SQLite catalog's file too: `sqlite:///~/c.db` and `sqlite:///$CATALOG` made `./~/c.db` and
            # `./$CATALOG`, a catalog of each working directory's.
            sqlite = _SQLITE_FILE.match(value)
            path = value[sqlite.end() :] if sqlite else value
            if "://" not in path:
                try:
                    refuse_misplaced_path(path)
                except ValueError as error:
                    # `sqlite:///home/me/c.db` is relative: `./home/me/c.db`.
                    absolute = (
                        f"; an absolute path takes four slashes, {sqlite.group()}/home/me/c.db"
                        if sqlite
                        else ""
                    )
                    raise ValueError(f"{error}{absolute}") from None
        return value

    @field_validator("parquet_root", "iceberg_warehouse")
    @classmethod
    def _storage_uri_names_a_place(cls, value: str | None) -> str | None:
        return value if value is None or "://" not in value else _storage_uri(value)

    @field_validator("destination", mode="before")
    @classmethod
    def _destination_as_named(cls, value: object) -> object:
        # Read from a file's last line, `duckdb\n` was refused as "Input should be 'duckdb' or 'iceberg'".
        return value.strip() if isinstance(value, str) else value

    @field_validator("duckdb_path", "parquet_root", "state_dir")
    @classmethod
    def _utf8(cls, value: Path | str | None) -> Path | str | None:
        # DuckDB and pyarrow take paths as UTF-8 text only.
        _refuse_what_is_not_utf8(str(value), remedy=": rename it")
        return value

    @field_validator("iceberg_namespace")
    @classmethod
    def _namespace_has_names(cls, value: str, info: ValidationInfo) -> str:
        # Read by the Iceberg destination only: a DuckDB deployment's leftover empty variable is no error.
        if info.data.get("destination") is not DestinationKind.ICEBERG:
            return value
        if not all(part.strip() for part in value.split(".")):
            raise ValueError(f"{value!r} has an empty part: give a name such as braintrust, or analytics.bt")
        for part in value.split("."):
            # ` x` made a namespace, and a directory, of that name, beside the one meant.
            _refuse_blank_ends(part, "namespace")
        return value

    @field_validator("duckdb_path", "parquet_root")
    @classmethod
    def _no_pattern_characters(cls, value: Path | str | None) -> Path | str | None:
        # DuckDB reads the tables' files through glob patterns, which would take these as wildcards and
        # find no file (or the wrong ones); a file named by them is refused in one line instead.
        if value is None or "://" in str(value):
            return value
        path = Path(value).absolute()
        found = sorted(set(_GLOB_CHARACTERS) & set(str(path)))
        if found:
            raise ValueError(
                f"the path {path} holds {' and '.join(found)}, which DuckDB reads as a wildcard or an "
                "escape in file names: choose a directory whose path has none of * ? [ ] \\"
            )
        return value

    @property
    def tables_root(self) -> str:
        """Where the table files live: the Parquet root, or a directory beside the DuckDB file (the file a
        link names: a link to another disk puts the rows there, not only the views)."""
        if self.parquet_root:
            return self.parquet_root
        beside = self.duckdb_path.with_name(self.duckdb_path.name + ".tables")
        # Kept beside the link where a sync put them before links were followed.
        if self.duckdb_path.is_symlink() and not beside.exists():
            target = Path(os.path.realpath(self.duckdb_path))
            beside = target.with_name(target.name + ".tables")
        return str(beside)


def hours_window(hours: float, setting: str) -> timedelta:
    """A window given in hours (`--retain-hours`, a check's `max_age_hours`), as a `timedelta`.

    Raises:
        ConfigError: `hours` is negative, not a number, or longer than `MAX_WINDOW_HOURS`.
    """
    if not 0 <= hours <= MAX_WINDOW_HOURS:  # also refuses nan, which compares false
        # As given: a whole number was shown as Python's float (878401.0); a huge one as Python writes it.
        given = f"{hours:,.0f}" if float(hours).is_integer() and abs(hours) < 1e16 else repr(hours)
        raise ConfigError(
            f"invalid setting: {setting}: must be between 0 and {MAX_WINDOW_HOURS:,} hours, got {given}"
        )
    return timedelta(hours=hours)


def setting_named(field: str, flag: str, given: object) -> str:
    """How a message names a warehouse setting: by its `flag`, unless it was not `given` and a variable set
    it (`BT_SYNC_STATE_DIR=afile` was told `--state-dir afile: afile is not a directory`)."""
    set_by = variable_set(WarehouseSettings.model_fields[field])
    return set_by if given is None and set_by is not None else flag


def check_state_dir(state_dir: Path, flag: str = "--state-dir") -> None:
    """Refuse a state directory (`flag`) that cannot be created or written, before a command
    writes anything: a sync found out only once it had written the warehouse.

    Raises:
        ConfigError: a file, or a link to nothing, stands at it or at a parent, or its nearest existing
            parent is not writable.
    """
    for path in (state_dir, *state_dir.parents):
        if path.is_symlink() and not path.exists():  # `mkdir` of it fails with "File exists"
            if loops(path):  # two links naming each other: each exists, neither leads anywhere
                raise ConfigError(f"{flag} {state_dir}: {path} leads into a loop of symbolic links")
            raise ConfigError(
                f"{flag} {state_dir}: {path} is a link to {os.readlink(path)}, which does not exist"
            )
    existing = next(path for path in (state_dir, *state_dir.absolute().parents) if path.exists())
    if not existing.is_dir():
        raise ConfigError(f"{flag} {state_dir}: {existing} is not a directory")
    check_writable(flag, state_dir)


# What a file given as `--duckdb` starts with: DuckDB's own files, at an offset (after a checksum), and
# files that are often named `.db` or by mistake.
_DUCKDB_MAGIC, _DUCKDB_MAGIC_AT = b"DUCK", 8
_OTHER_FILES = ((b"SQLite format 3\x00", "a SQLite database"), (b"PAR1", "a Parquet file"))


def check_duckdb_file(path: Path, named: str = "--duckdb") -> None:
    """Refuse a DuckDB file (`named`: its flag, or its setting) that is a directory, or a file that is no
    DuckDB database.

    Raises:
        ConfigError: it is one, named with what it is.
    """
    if loops(path):
        # Refused by the sync only once the API was asked and the tables' directory written.
        raise ConfigError(f"{named} {path} leads into a loop of symbolic links: name a file")
    # No file can have it (looking at it failed with the system's "File name too long", exit 1).
    check_name_fits(named, path, 0)
    if path.is_dir():
        raise ConfigError(f"{named} {path} is a directory: name a DuckDB file in it")
    if path.exists() and not path.is_file():
        # A named pipe would be opened for its first bytes, waiting for a writer for good.
        raise ConfigError(f"{named} {path} is not a regular file: name a DuckDB file")
    if (other := _not_duckdb(path)) is not None:
        # Refused by DuckDB only once the API was asked and the tables' directory written; a SQLite file
        # opened through the sqlite extension, which DuckDB first tried to download (10 s offline).
        raise ConfigError(f"{named} {path} is {other}, not a DuckDB database: name another file")


def _not_duckdb(path: Path) -> str | None:
    """What the file at `path` is when it is no DuckDB database ("an empty file"); None when it is one, or
    is not there (bt-sync makes it), or cannot be read (DuckDB says why in its words)."""
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except OSError:
        return None
    if head[_DUCKDB_MAGIC_AT : _DUCKDB_MAGIC_AT + len(_DUCKDB_MAGIC)] == _DUCKDB_MAGIC:
        return None
    if not head:
        return "an empty file"  # which DuckDB refuses to open
    return next((kind for magic, kind in _OTHER_FILES if head.startswith(magic)), "another kind of file")


def check_name_fits(flag: str, path: Path, longer_by: int) -> None:
    """Refuse a file whose name leaves no room for those written beside it, `longer_by` bytes longer:
    they failed with "File name too long" of a hidden name once the catalog's tables were written.

    Raises:
        ConfigError: the name is too long there.
    """
    existing = next((part for part in path.absolute().parents if part.is_dir()), None)
    try:
        most = os.pathconf(existing or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        most = 255
    length = len(os.fsencode(path.name))
    if length + longer_by > most:
        beside = ""
        if longer_by:
            beside = f", and bt-sync writes files beside it whose names are {longer_by} longer"
        raise ConfigError(
            f"{flag} {path}: its name is {length} bytes long{beside}, past the {most} this file system "
            f"allows: give a name of at most {most - longer_by} bytes"
        )


def check_writable(flag: str, path: Path) -> None:
    """Refuse a directory a command is to write in (`path`, or where it will be made) that its nearest
    existing directory cannot hold, before the command writes anything.

    Tried, not asked: `os.access` says yes to root everywhere, also in /proc and /sys, where nothing
    can be made, and the sync found out once it had written the catalog's tables.

    Raises:
        ConfigError: nothing can be made there, said why.
    """
    existing = next((part for part in (path, *path.absolute().parents) if part.is_dir()), None)
    if existing is None:
        return  # a file in the way: the command's own checks say so
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bt-sync-writable-", dir=existing))
    except OSError as error:
        raise ConfigError(f"{flag} {path}: cannot create or write in {existing} ({error.strerror})") from None
