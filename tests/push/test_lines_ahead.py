"""The helper process that decides a JSON Lines file's lines ahead of a push: same decisions, same push."""

from __future__ import annotations

import gzip
import os
import struct
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

import connector.push.lines_ahead as lines_ahead
from connector.api.client import BraintrustClient
from connector.emulator import Emulator
from connector.push.event_lines import EventLines
from connector.push.lines_ahead import LinesAhead, latest_passed
from connector.push.options import PushOptions
from connector.push.read import CHUNK_ROWS, InputFile, jsonl_runs
from connector.push.run import push_file
from tests.push.helpers import PROJECT

RULES = EventLines(frozenset({"id", "input", "expected", "metadata", "tags"}), frozenset({"input"}), 10_000)


def mixed_lines(rows: int) -> bytes:
    """JSON lines most of which are their events, with every kind of line that is not among them."""
    not_events = [
        b'{"id": "k", "input": "x", "unknown": 1}',  # a key no event has
        b'{"id": "k", "input": null}',  # a null field
        b'{"id": "k", "input": "{\\"a\\": 1}"}',  # text that is parsed as JSON
        b'{"id": "k", "input": ',  # not JSON
        b'{"id": "\xff"}',  # not UTF-8
        b'{"id": "k", "metadata": [1]}',  # metadata that is no object
        b"",  # a blank line
    ]
    lines = []
    for number in range(rows):
        if number % 97 == 5:
            lines.append(not_events[number // 97 % len(not_events)].replace(b'"k"', b'"k%d"' % number))
        else:
            event = {
                "id": f"case-{number % 400}",
                "input": {"q": number},
                "tags": ["t"],
                "metadata": {"n": 1},
            }
            lines.append(orjson.dumps(event))
    return b"\n".join(lines) + b"\n"


def decided_by(helper: LinesAhead, first_row: int, lines: list[bytes]) -> list[str | None]:
    """The helper's decision on a run, asked for until it comes: the helper starts late, then runs ahead."""
    deadline = time.monotonic() + 30
    while (decided := helper.ids(first_row, lines)) is None:
        assert time.monotonic() < deadline, f"the helper never decided the run at row {first_row}"
        time.sleep(0.01)
    return decided


# The third: a name that is not UTF-8 (Linux allows any bytes), kept apart from the helper's JSON.
@pytest.mark.parametrize("name", ["lines.jsonl", "lines.jsonl.gz", "lines-\udcff.jsonl"])
def test_the_helper_decides_every_run_as_the_push_would(tmp_path: Path, name: str) -> None:
    content = mixed_lines(3 * CHUNK_ROWS + 50)
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    source = InputFile(path, "gzip" if name.endswith(".gz") else None)
    runs = list(jsonl_runs(source))
    assert len(runs) > 4, "the file has several runs, cut at blank lines too"
    with closing(LinesAhead(source, RULES)) as helper:
        for first_row, lines in runs:
            assert decided_by(helper, first_row, lines) == RULES.ids(lines)
    decided_here = [row_id for _, lines in runs for row_id in RULES.ids(lines)]
    assert None in decided_here and "case-7" in decided_here, "the file holds both kinds of line"


def test_the_helper_skips_the_runs_the_push_decided_and_decides_the_others(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(mixed_lines(4 * CHUNK_ROWS))
    _, (second_row, _), *others = jsonl_runs(InputFile(path, None))
    with closing(LinesAhead(InputFile(path, None), RULES)) as helper:
        # As the push says when the helper has not decided a run yet: it decides it itself.
        helper.decided_here(1)
        helper.decided_here(second_row)
        for first_row, lines in others:
            assert decided_by(helper, first_row, lines) == RULES.ids(lines)


def test_the_helper_reads_the_last_row_the_push_told_it() -> None:
    told, tell = os.pipe()
    os.set_blocking(told, False)
    try:
        assert latest_passed(told, 7) == 7, "nothing told: what it knew"
        os.write(tell, struct.pack("=Q", 1025) + struct.pack("=Q", 2049))
        assert latest_passed(told, 7) == 2049
        assert latest_passed(told, 2049) == 2049
    finally:
        os.close(told)
        os.close(tell)


class SlowFirstChunk:
    """Progress that holds the first validated chunk back: by then the helper has decided the others."""

    def __init__(self) -> None:
        self._waited = False

    def task(self, description: str, total_rows: int | None = None, unit: str = "pages") -> SlowFirstChunk:
        return self

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        if rows and not self._waited:
            self._waited = True
            time.sleep(1)

    def close(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize("helper", ["decides", "fails"])
def test_a_push_decided_ahead_sends_what_a_push_decided_here_sends(
    emulator: Emulator,
    push_client: BraintrustClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helper: str,
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(mixed_lines(4 * CHUNK_ROWS))
    taken: list[bool] = []
    ids = LinesAhead.ids

    def counted(self: LinesAhead, first_row: int, lines: Any) -> list[str | None] | None:
        decided = ids(self, first_row, lines)
        taken.append(decided is not None)
        return decided

    monkeypatch.setattr(LinesAhead, "ids", counted)

    def pushed(dataset: str, smallest_helped: int) -> tuple[dict[str, Any], list[bytes], bytes]:
        monkeypatch.setattr(lines_ahead, "MIN_FILE_BYTES", smallest_helped)
        rejects = tmp_path / f"rejects-{dataset}.jsonl"
        options = PushOptions(
            file=path,
            project=PROJECT,
            dataset=dataset,
            id_column="id",
            on_error="skip",
            rejects=rejects,
            state_dir=tmp_path / "state",
        )
        summary = push_file(push_client, options, SlowFirstChunk())
        assert summary.dataset_id is not None
        rows = emulator.store.live_rows("dataset", summary.dataset_id)
        # The first push creates the project too.
        comparable = summary.model_dump(exclude={"dataset", "dataset_id", "seconds", "rejects", "created"})
        return comparable, sorted(orjson.dumps(_event(row)) for row in rows), rejects.read_bytes()

    here = pushed("here", path.stat().st_size + 1)
    assert not taken, "a file under the size has no helper"
    if helper == "fails":
        monkeypatch.setattr(sys, "executable", "/bin/false")
    assert pushed("ahead", 0) == here
    assert here[0]["rows_skipped"] and here[0]["rows_duplicate"], "rejects and repeated ids are compared too"
    if helper == "decides":
        assert taken.count(True) >= 3, "the helper decided the runs after the first"
    else:
        assert taken and not any(taken), "the push asked the failed helper, then decided every run itself"


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row.get(key) for key in ("id", "input", "expected", "metadata", "tags")}
