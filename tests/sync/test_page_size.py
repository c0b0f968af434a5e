"""Pages are sized in bytes, not only in traces: staging's memory follows the page, whatever a row weighs."""

from __future__ import annotations

from typing import Any

import pytest

from connector.config import WarehouseSettings
from connector.emulator import Emulator, FaultRule
from connector.sync import extract, stage
from connector.sync.extract import next_limit
from connector.sync.stage import PageStager
from tests.helpers import fetches_served, sync

TARGET = 256 * 1024


def test_the_limit_grows_toward_the_byte_target_and_never_passes_the_page_limit() -> None:
    assert next_limit(10, page_bytes=1_000, most=1000) == 80  # small pages: eightfold
    assert next_limit(10, page_bytes=extract.PAGE_TARGET_BYTES // 4, most=1000) == 40  # aimed
    assert next_limit(400, page_bytes=4 * extract.PAGE_TARGET_BYTES, most=1000) == 100  # too big: shrink
    assert next_limit(600, page_bytes=extract.PAGE_TARGET_BYTES // 2, most=1000) == 1000  # capped
    assert next_limit(1, page_bytes=100 * extract.PAGE_TARGET_BYTES, most=1000) == 1  # one trace at least


def test_an_incremental_read_grows_by_at_most_half_the_traces_read() -> None:
    assert next_limit(64, page_bytes=1_000, most=1000, traces_read=127) == 63  # not 128
    assert next_limit(4, page_bytes=1_000, most=1000, traces_read=100) == 8  # still at most double
    assert next_limit(1, page_bytes=1_000, most=1000, traces_read=1) == 1  # one trace at least


@pytest.fixture
def page_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every page staged, in order."""
    sizes: list[int] = []
    real_stage = PageStager.stage

    def recording(self: PageStager, body: bytes, cutoff: int | None) -> Any:
        sizes.append(len(body))
        return real_stage(self, body, cutoff)

    monkeypatch.setattr(PageStager, "stage", recording)
    monkeypatch.setattr(extract, "PAGE_TARGET_BYTES", TARGET)
    return sizes


def test_pages_of_heavy_rows_hold_fewer_traces(
    emulator: Emulator, warehouse: WarehouseSettings, page_sizes: list[int]
) -> None:
    project = emulator.store.create_project("heavy")
    # Traces of one span of ~20 kB: a page of the default 1,000 traces would be 20 MB.
    emulator.store.generate_logs(project["id"], 600, trace_spans=(1, 1), payload_bytes=20_000, rng_seed=1)
    summary = sync(emulator, warehouse)
    (synced,) = summary.objects
    assert synced.rows == 600
    # Pages start small and grow until they near the target, then stay near it.
    assert len(page_sizes) > 4
    assert page_sizes[0] < TARGET
    assert max(page_sizes) <= 2 * TARGET, page_sizes


@pytest.mark.parametrize("compressed", [False, True], ids=["declared-length", "gzip"])
def test_a_page_far_heavier_than_the_ones_before_is_asked_for_again_with_fewer_traces(
    emulator: Emulator, warehouse: WarehouseSettings, page_sizes: list[int], compressed: bool
) -> None:
    project = emulator.store.create_project("light-then-heavy")
    # Older traces of ~20 kB, then the newest 100 of ~200 bytes: a page sized from the light ones
    # takes in heavy ones by the hundred, 24 times its aim (staged whole before the fix).
    emulator.store.generate_logs(project["id"], 400, trace_spans=(1, 1), payload_bytes=20_000, rng_seed=3)
    emulator.store.generate_logs(project["id"], 100, trace_spans=(1, 1), payload_bytes=200, rng_seed=4)
    if compressed:  # the client finds the page too large by reading it, not from its declared length
        emulator.faults.add(FaultRule(kind="gzip", route="/fetch", times=None))
    (synced,) = sync(emulator, warehouse).objects
    assert synced.rows == 500
    assert max(page_sizes) <= extract.OVERSIZED_PAGE * TARGET, page_sizes
    # A page too large was asked for again and never staged (one fetch more reads the newest version).
    assert fetches_served(emulator) - 1 - len(page_sizes) >= 1, page_sizes


def test_a_trace_heavier_than_staging_s_base_memory_still_syncs(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Any
) -> None:
    project = emulator.store.create_project("one-huge-trace")
    # One trace of 30 spans of 200 kB: a 6 MB page, which takes DuckDB about 96 MB to type, more than
    # staging's base memory: the limit must grow with the page.
    emulator.store.generate_logs(
        project["id"], 30, trace_spans=(30, 30), payload_bytes=200_000, update_fraction=0, rng_seed=2
    )
    assert stage.STAGING_MEMORY_BASE_BYTES < 96 * 2**20
    (synced,) = sync(emulator, warehouse).objects
    assert synced.rows == 30
