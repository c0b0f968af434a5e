"""Shared fixtures: a real emulator on loopback, throwaway warehouses, fast API clients, a small disk."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.api.client import BraintrustClient
from connector.config import WarehouseSettings
from connector.emulator import Emulator
from tests.helpers import SmallDisk, fast_client, warehouse_in

# Where a machine keeps files in memory. The tests' files (warehouses, staged pages, spilled queries) go
# there when it exists: on a disk every fsync, rename and removal waits for it, over a quarter of a small
# sync's time in a profile on an ext4 mounted with `discard`. What a full disk does is tested on a tmpfs
# of its own either way (`small_disk`).
_MEMORY_FS = Path("/dev/shm")
# A whole run peaked at 0.6 GB there (pytest keeps every test's directory until the run ends); a
# container's /dev/shm is often 64 MB, too small, and the files then stay on disk.
_MEMORY_NEEDED_BYTES = 2 * 1024**3
_SESSION_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Give the run's processes a terminal's signals, and put the session's temporary files (pytest's and
    those of every process it starts) in memory."""
    _signals_as_from_a_terminal()
    is_worker = hasattr(config, "workerinput")  # an xdist worker gets its directory from the controller
    if is_worker or config.option.basetemp is not None or not os.access(_MEMORY_FS, os.W_OK):
        return
    if shutil.disk_usage(_MEMORY_FS).free < _MEMORY_NEEDED_BYTES:
        return
    session = Path(tempfile.mkdtemp(prefix="bt-sync-tests-", dir=_MEMORY_FS))
    config.option.basetemp = str(session / "pytest")
    # Open to other users as /tmp is (sticky): a test runs PostgreSQL as its own user, in TMPDIR.
    session.chmod(0o755)
    (session / "tmp").mkdir()
    (session / "tmp").chmod(0o1777)  # not mkdir's mode, which the umask masks
    os.environ["TMPDIR"] = str(session / "tmp")
    tempfile.tempdir = None  # read TMPDIR again
    config.stash[_SESSION_DIR] = session


def _signals_as_from_a_terminal() -> None:
    """Let Ctrl-C and SIGTERM reach the processes the tests start, however the run itself was started.

    A shell starts a background job (`make test &` in a script) with SIGINT ignored, and a process
    inherits a signal ignored: the tests that stop bt-sync as a user or a scheduler does found it
    ignoring them. SIGTERM too, once a Dagster run in the same worker had ended: Dagster then gives
    SIGTERM the disposition SIGINT has (`dagster._utils.interrupts`).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the memory back: the directory of a session that ends is removed, its failures' files too."""
    session = config.stash.get(_SESSION_DIR, None)
    if session is not None:
        shutil.rmtree(session, ignore_errors=True)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator with no data, on a free loopback port."""
    with Emulator(seed="empty") as running:
        yield running


@pytest.fixture
def demo_emulator() -> Iterator[Emulator]:
    """A running emulator with the demo seed."""
    with Emulator(seed="demo") as running:
        yield running


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseSettings:
    """A throwaway DuckDB destination (Parquet files and the DuckDB file of views) under `tmp_path`."""
    return warehouse_in(tmp_path)


@pytest.fixture
def push_client(emulator: Emulator) -> Iterator[BraintrustClient]:
    """A client of `emulator` with fast retries."""
    with fast_client(emulator) as client:
        yield client


@pytest.fixture
def small_disk_mb() -> int:
    """The size of `small_disk`; a test module that needs a smaller one overrides this fixture."""
    return 2


@pytest.fixture
def small_disk(tmp_path: Path, small_disk_mb: int) -> Iterator[SmallDisk]:
    """A tmpfs of `small_disk_mb` at `tmp_path / "small"`, for what a full disk does."""
    disk = SmallDisk(tmp_path / "small", small_disk_mb)
    yield disk
    disk.unmount()
