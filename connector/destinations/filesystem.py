"""A directory tree on a local disk or on S3-compatible object storage, through `pyarrow.fs`.

Every write that readers may see is atomic: locally a temporary file that is
flushed and renamed into place, on object storage a single PUT. Credentials
come from the standard AWS settings (environment, profile); a root given as a
URI with credentials in it works too, but is never shown: `display` hides them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from connector.errors import WarehouseError, in_the_way
from connector.redaction import redact
from connector.state_file import write_atomically


class Root:
    """A directory tree: paths inside it are `/`-joined strings relative to the root.

    Args:
        location: a local directory, or a URI `pyarrow.fs` understands (`s3://bucket/prefix`).

    Raises:
        WarehouseError: the location cannot be used.
    """

    def __init__(self, location: str) -> None:
        self.display = redact(location)
        self.is_local = "://" not in location or location.startswith("file://")
        try:
            if self.is_local:
                self.fs: pafs.FileSystem = pafs.LocalFileSystem()
                self._base = str(Path(location.removeprefix("file://")).resolve())
            else:
                self.fs, self._base = pafs.FileSystem.from_uri(location)
        except (OSError, ValueError, pa.ArrowException) as error:
            raise WarehouseError(f"cannot use {self.display}: {_reason(error)}") from None
        self._base = self._base.rstrip("/")

    def full(self, relative: str) -> str:
        """The path of `relative` in the filesystem."""
        return f"{self._base}/{relative}" if relative else self._base

    def local(self, relative: str) -> Path:
        """The local path of `relative` (local roots only)."""
        assert self.is_local, "only a local root has local paths"
        return Path(self.full(relative))

    def shown(self, relative: str) -> str:
        """`relative` as the user named the root, for messages: credentials hidden, a URI's query last."""
        if self.is_local:
            return f"{self.display}/{relative}"
        location, mark, query = self.display.partition("?")
        return f"{location.rstrip('/')}/{relative}{mark}{query}"

    def uri(self, relative: str = "") -> str:
        """A URI or absolute path naming `relative` for other tools, without credentials."""
        if self.is_local:
            return self.full(relative)
        scheme = self.display.split("://", 1)[0]
        return f"{scheme}://{self.full(relative)}"

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self.full(relative)) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as error:
            raise self._error("read", relative, error) from None

    def write(self, relative: str, data: bytes, *, before: datetime | None = None) -> None:
        """Replace the file with `data` atomically.

        Args:
            relative: the file.
            data: its new content.
            before: on a local disk, replace the file only before this moment, or raise
                `WriteOverran` (object storage has no such check).
        """
        if self.is_local:
            path = self.local(relative)
            try:
                write_atomically(
                    path,
                    data,
                    temporary=path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"),
                    before=before,
                )
            except OSError as error:
                raise self._error("write", relative, error) from None
            return
        try:
            with self.fs.open_output_stream(self.full(relative)) as stream:
                stream.write(data)
        except (OSError, pa.ArrowException) as error:
            raise self._error("write", relative, error) from None

    def output(self, relative: str) -> pa.NativeFile:
        """A stream writing a new file (for temporary names: it is not atomic on a local disk)."""
        try:
            if self.is_local:
                self.local(relative).parent.mkdir(parents=True, exist_ok=True)
            return self.fs.open_output_stream(self.full(relative))
        except (OSError, pa.ArrowException) as error:
            raise self._error("write", relative, error) from None

    def place(self, local_file: Path, relative: str) -> None:
        """Move a local file to `relative`: a rename on the same disk, otherwise a copy."""
        try:
            if self.is_local:
                destination = self.local(relative)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(local_file, destination)
                except OSError:
                    shutil.copyfile(local_file, destination)
                    local_file.unlink()
                return
            pafs.copy_files(str(local_file), self.full(relative), destination_filesystem=self.fs)
        except (OSError, pa.ArrowException) as error:
            raise self._error("write", relative, error) from None

    def fetch(self, relative: str, local_file: Path) -> None:
        """Copy a file of the tree to a local file."""
        try:
            pafs.copy_files(self.full(relative), str(local_file), source_filesystem=self.fs)
        except (OSError, pa.ArrowException) as error:
            raise self._error("read", relative, error) from None

    def copy(self, source: str, target: str) -> None:
        """Copy a file within the tree (one PUT on object storage, so readers see it whole)."""
        try:
            self.fs.copy_file(self.full(source), self.full(target))
        except (OSError, pa.ArrowException) as error:
            raise self._error("copy", source, error) from None

    def modified(self, relative: str) -> datetime:
        """When a file was last written."""
        try:
            mtime: datetime = self.fs.get_file_info(self.full(relative)).mtime
        except (OSError, pa.ArrowException) as error:
            raise self._error("stat", relative, error) from None
        return mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)

    def rename(self, source: str, target: str) -> None:
        """Move `source` over `target` (atomic on a local disk; a copy on object storage)."""
        try:
            self.fs.move(self.full(source), self.full(target))
        except (OSError, pa.ArrowException) as error:
            raise self._error("rename", source, error) from None

    def exists(self, relative: str) -> bool:
        """Whether a file exists."""
        try:
            info = self.fs.get_file_info(self.full(relative))
        except (OSError, pa.ArrowException) as error:
            raise self._error("stat", relative, error) from None
        return bool(info.type == pafs.FileType.File)

    def files_under(self, relative: str) -> list[str]:
        """Paths (relative to the root) of the files under a directory, at any depth (none when it does
        not exist)."""
        selector = pafs.FileSelector(self.full(relative), recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as error:
            raise self._error("list", relative, error) from None
        base = len(self.full("")) + 1
        return sorted(info.path[base:] for info in infos if info.type == pafs.FileType.File)

    def list(self, relative: str) -> list[str]:
        """Names of the entries of a directory (empty when it does not exist)."""
        return sorted(self.sizes(relative))

    def sizes(self, relative: str) -> dict[str, int]:
        """The entries of a directory and their sizes in bytes, from the one listing (empty when it does
        not exist): no request per file on object storage."""
        selector = pafs.FileSelector(self.full(relative), allow_not_found=True)
        try:
            return {info.base_name: int(info.size or 0) for info in self.fs.get_file_info(selector)}
        except (OSError, pa.ArrowException) as error:
            raise self._error("list", relative, error) from None

    def delete(self, relative: str) -> None:
        """Delete a file if it exists."""
        try:
            self.fs.delete_file(self.full(relative))
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as error:
            raise self._error("delete", relative, error) from None

    def delete_tree(self, relative: str) -> None:
        """Delete a directory and everything in it, if it exists."""
        try:
            self.fs.delete_dir(self.full(relative))
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as error:
            raise self._error("delete", relative, error) from None

    def _error(self, action: str, relative: str, error: BaseException) -> WarehouseError:
        return WarehouseError(f"cannot {action} {self.shown(relative)}: {_reason(error)}")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return in_the_way(error) or error.strerror
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return redact(text)
