"""Memory flat in the size of the object: a sync's peak follows its pages, not the rows it reads."""

from __future__ import annotations

from pathlib import Path

from connector.emulator import Emulator
from tests.helpers import cli_peak_rss_mib, cli_warehouse_args, warehouse_in


def test_the_peak_memory_of_a_sync_is_flat_in_the_size_of_the_object(
    emulator: Emulator, tmp_path: Path
) -> None:
    peaks: dict[int, float] = {}
    for rows in (20_000, 100_000):
        project = emulator.store.create_project(f"rows-{rows}")
        emulator.store.generate_logs(project["id"], rows, update_fraction=0.0, rng_seed=1)
        settings = warehouse_in(tmp_path, f"w{rows}")
        # Pages of at most 100 traces: both objects reach their steady page size within a few pages, so
        # the comparison is of the object's size alone (a 20,000-row object never fills 7 MB pages).
        peaks[rows] = cli_peak_rss_mib(
            "sync", *cli_warehouse_args(settings), "--api-url", emulator.url, "--project", project["name"],
            "--objects", "logs", "--page-limit", "100",
            env={"BRAINTRUST_API_KEY": emulator.api_key},
        )  # fmt: skip
    assert peaks[100_000] <= 1.15 * peaks[20_000], peaks
