"""Progress bars: drawn on a terminal, nowhere else; a `--json` run off a terminal does not import rich."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

import pytest

from connector.config import WarehouseSettings
from connector.emulator import Emulator
from tests.helpers import CLI, cli_imports, cli_warehouse_args, sync

# A terminal as wide as a user's, and one rich draws on.
TERMINAL = {"COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `bt-sync ARGS` with stderr on a pseudo-terminal; return its exit status and what the terminal
    showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*CLI, *args],
        env={**os.environ, **TERMINAL, **env},
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    shown = bytearray()
    # Read while it runs: a terminal whose output nobody reads blocks its writer once its buffer is full.
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: the process exited and closed its side
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=60), shown.decode(errors="replace")


def sync_args(emulator: Emulator, warehouse: WarehouseSettings, *extra: str) -> list[str]:
    return [
        "sync",
        "--api-url",
        emulator.url,
        "--project",
        "support-bot",
        *cli_warehouse_args(warehouse),
        *extra,
    ]


def test_a_sync_on_a_terminal_draws_a_bar_per_object(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    status, shown = run_on_terminal(
        sync_args(demo_emulator, warehouse), {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    )
    assert status == 0, shown
    assert "project_logs · support-bot" in shown
    assert "experiment_events · support-bot/baseline" in shown
    # The API pages through every version of each row: the bar counts versions, not the table's rows.
    assert "versions/s" in shown and " versions · " in shown and " pages " in shown
    assert "rows/s" not in shown and " rows · " not in shown


def test_json_output_draws_no_bar_even_on_a_terminal(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    status, shown = run_on_terminal(
        sync_args(demo_emulator, warehouse, "--json"), {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    )
    assert status == 0, shown
    assert "versions/s" not in shown and "project_logs ·" not in shown


def test_a_push_on_a_terminal_counts_batches(demo_emulator: Emulator, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"id": "r{n}", "input": {n}}}\n' for n in range(30)))
    args = ["push", str(rows), "--api-url", demo_emulator.url, "--project", "p", "--dataset", "d"]
    args += ["--state-dir", str(tmp_path / "state"), "--batch-rows", "10"]
    status, shown = run_on_terminal(args, {"BRAINTRUST_API_KEY": demo_emulator.api_key})
    assert status == 0, shown
    assert " 3 batches " in shown and " pages " not in shown and "rows/s" in shown


@pytest.mark.parametrize("command", ["sync", "push", "status", "projects"])
def test_a_scheduled_json_run_imports_neither_rich_nor_pygments(
    command: str, demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    # Off a terminal no bar is drawn and `--json` prints no table: rich would be 0.1 s of start-up for naught.
    # `status` and `projects` imported rich's tables before they looked at `--json`.
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    if command == "sync":
        args = sync_args(demo_emulator, warehouse, "--json")
    elif command == "status":
        sync(demo_emulator, warehouse)
        args = ["status", *cli_warehouse_args(warehouse)[:4], "--json"]
    elif command == "projects":
        args = ["projects", "--api-url", demo_emulator.url, "--json"]
    else:
        rows = tmp_path / "rows.jsonl"
        rows.write_text('{"id": "a", "input": 1}\n{"id": "b", "input": 2}\n')
        args = ["push", str(rows), "--api-url", demo_emulator.url, "--project", "p", "--dataset", "d"]
        args += ["--state-dir", str(tmp_path / "state"), "--json"]
    done, modules = cli_imports(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert "orjson" in modules  # the probe sees the run's imports
    assert not {module.split(".")[0] for module in modules} & {"rich", "pygments"}
