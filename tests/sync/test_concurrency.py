"""Syncs side by side: two processes on one warehouse, and the per-object lock that keeps them apart."""

from __future__ import annotations

import os
import subprocess
import threading

from connector.config import WarehouseSettings
from connector.destinations.base import ObjectRef
from connector.emulator import Emulator, ListQuery
from connector.wiring import open_destination
from schemas.kinds import PROJECT
from tests.helpers import CLI, cli_warehouse_args, event_tables, run_cli, sync, warehouse_in


def test_two_syncs_at_once_on_one_warehouse_give_a_clean_result(
    demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: object
) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sync(demo_emulator, warehouse)
        except BaseException as error:
            errors.append(error)

    other = subprocess.Popen(
        [
            *CLI,
            "sync",
            "--api-url",
            demo_emulator.url,
            *cli_warehouse_args(warehouse),
            "--json",
            "--overlap-seconds",
            "0",
        ],
        env={**os.environ, "BRAINTRUST_API_KEY": demo_emulator.api_key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    _, stderr = other.communicate(timeout=120)
    assert other.returncode == 0, stderr.decode()
    assert not errors
    reference = warehouse_in(warehouse.state_dir.parent, "reference")
    sync(demo_emulator, reference, full=True)
    assert event_tables(warehouse) == event_tables(reference)


def test_a_sync_waits_for_the_object_lock_then_fails_that_object_clearly(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    project = demo_emulator.store.list_objects("project", ListQuery(name="support-bot"))[0]
    assert PROJECT.events is not None
    ref = ObjectRef(PROJECT.events, project["id"], project["id"], project["name"])
    destination = open_destination(warehouse)
    with destination.lock(ref, 0):
        done = run_cli(
            "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse),
            "--lock-wait", "1", "--json",
            env={"BRAINTRUST_API_KEY": demo_emulator.api_key},
        )  # fmt: skip
    assert done.returncode == 1
    waiting, line = done.stderr.strip().splitlines()
    # Said as the wait starts, then as it gives up.
    assert waiting.startswith(
        "bt-sync: warning: another bt-sync process is syncing project_logs 'support-bot'"
    )
    assert waiting.endswith(
        ": waiting for it, up to 1s (--lock-wait; in Dagster, the WarehouseResource's lock_wait_s)"
    )
    assert "another bt-sync process is syncing project_logs 'support-bot'" in line and "--lock-wait" in line
    # Every other object was synced meanwhile.
    objects = __import__("json").loads(done.stdout)["objects"]
    synced = {o["name"] for o in objects if o["status"] == "synced"}
    assert "support-bot/baseline" in synced and "support-bot" not in synced
    # Its time is the wait's (it said 0.0).
    (waited,) = [o["seconds"] for o in objects if o["name"] == "support-bot"]
    assert 1.0 <= waited < 30
