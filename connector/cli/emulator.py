"""`bt-sync emulator`: run the local Braintrust-compatible API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from connector.cli.app import CheckedCommand, app, print_output
from connector.cli.options import key_given, path_value

DEFAULT_EMULATOR_KEY = "bt-emulator-key"
# Held while an emulator serves its state directory.
_LOCK = ".emulator.lock"


_STATE_OPTION = typer.Option(
    None, "--state", **path_value("--state"), help="Directory that persists the data across restarts."
)


@app.command("emulator", cls=CheckedCommand)
def run_emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (keep it on loopback)."),
    port: int = typer.Option(
        8787, "--port", min=0, max=65535, help="Port to listen on (0 picks a free one)."
    ),
    seed: str = typer.Option("demo", "--seed", help="Initial data: demo, empty, or bench:<rows>."),
    state: Path | None = _STATE_OPTION,
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        parser=key_given,
        metavar="<str>",
        help=f"Key clients must send (env: BRAINTRUST_API_KEY; default {DEFAULT_EMULATOR_KEY}).",
    ),
) -> None:
    """Serve the Braintrust API emulator until interrupted."""
    from connector.config import header_safe_key
    from connector.emulator import Emulator
    from connector.emulator.journal import ForeignJournal
    from connector.errors import ConfigError

    # Checked as a client checks its key, so that a key no client can send (a line break read from a
    # file into the variable) is refused here rather than answered with 401 to every request.
    # A blank variable is an unset one, as a client reads it; a blank flag is a mistake.
    from_variable = os.environ.get("BRAINTRUST_API_KEY", "").strip() or DEFAULT_EMULATOR_KEY
    setting = "--api-key" if api_key is not None else "BRAINTRUST_API_KEY"
    try:
        key = header_safe_key(api_key if api_key is not None else from_variable)
    except ValueError as error:
        raise ConfigError(f"invalid setting: {setting}: {error}") from None
    if not key:
        raise ConfigError("invalid setting: --api-key: is empty: give the key clients must send")
    if not host.strip():
        # `--host "$HOST"` with the variable unset listened on every interface (the address `""`).
        raise ConfigError("invalid setting: --host: is empty: give an address, such as 127.0.0.1")
    if host != host.strip():  # `0.0.0.0 ` was "Name or service not known", exit 1
        raise ConfigError(
            f"invalid setting: --host: {host!r} starts or ends with a blank: give the address alone"
        )
    # Said once it listens: an address that cannot be one (`999.1.1.1`) was called reachable, then failed.
    open_to_all = key == DEFAULT_EMULATOR_KEY and not _loopback(host)
    with _serving_alone(state):
        try:
            server = Emulator(api_key=key, seed=seed, state_dir=state)
        except ValueError as error:  # the seed
            raise ConfigError(f"--seed: {error}") from None
        except ForeignJournal as error:
            raise ConfigError(f"--state: {error}") from None
        # A state directory holding data is served as it was: the seed is not loaded over it.
        serving = f"the data in {state}, not --seed {seed}" if server.restored else f"seed={seed}"

        def listening(url: str) -> None:
            if open_to_all:
                typer.echo(
                    f"bt-sync: warning: --host {host} is reachable from other machines, and the emulator "
                    "takes the well-known default key: anyone who reaches it can read and change its data; "
                    "give --api-key (or BRAINTRUST_API_KEY)",
                    err=True,
                )
            print_output(f"Braintrust emulator on {url} ({serving}); clients authenticate with its API key.")

        try:
            server.serve_forever(host, port, listening)
        except OSError as error:
            if error.filename is not None:
                raise
            # The address's: the system's reason alone ("Address already in use") names neither host nor
            # port.
            raise OSError(error.errno, error.strerror, f"{host}:{port}") from None


def _loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine alone (`localhost`, `127.0.0.1`, `::1`)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: where it points is the network's to say


def _refuse_another_programs(state: Path) -> None:
    """Refuse a state directory holding files but no journal: another program's (a Parquet root, a
    project's directory), which its journal and lock would be written into.

    Raises:
        ConfigError: it is one.
    """
    from connector.errors import ConfigError

    if not state.is_dir() or (state / "journal.jsonl").exists():
        return
    # A fresh volume's `lost+found`, a desktop's hidden files: no program's data.
    others = sorted(
        entry.name
        for entry in state.iterdir()
        if not entry.name.startswith(".") and entry.name != "lost+found"
    )
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise ConfigError(
            f"--state: {state} holds files the emulator did not write ({shown}) and no journal: give a "
            "directory of its own, a new or empty one"
        )


@contextmanager
def _serving_alone(state: Path | None) -> Iterator[None]:
    """Hold the state directory's lock while serving it.

    Two emulators of one directory would each serve its data as of their start and append their own
    writes to its journal, unseen by the other: the next start would replay both, mixed.

    Raises:
        ConfigError: another emulator holds it.
    """
    if state is None:
        yield
        return
    from filelock import FileLock, Timeout

    from connector.config import check_state_dir
    from connector.errors import ConfigError

    check_state_dir(state, "--state")
    _refuse_another_programs(state)
    state.mkdir(parents=True, exist_ok=True)
    path = state / _LOCK
    # Made here, so that a directory where no file can be made says why: filelock takes such a failure
    # for a lock another holds.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"--state: another emulator is serving {state}: stop it, or give another directory"
        ) from None
    try:
        yield
    finally:
        lock.release()
