"""`push_file` against the real emulator: round trips, idempotence, resume, faults and bad input."""

from __future__ import annotations

import gc
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.api.client import BraintrustClient
from connector.emulator import Emulator, FaultRule
from connector.errors import AuthError, NotFoundError, PushError, RequestError, ServerUnavailable
from connector.progress import NullProgress
from connector.push.run import PushOptions, PushSummary, push_file
from tests.push.helpers import (
    CSV_AS_EVENTS,
    DATASET,
    JSONL_AS_EVENTS,
    PARQUET_AS_EVENTS,
    PROJECT,
    RecordingProgress,
    dataset_id,
    jsonl_rows,
    same_rows,
    synced_rows,
    write_csv,
    write_jsonl,
    write_parquet,
)

Push = Callable[..., PushSummary]


@pytest.fixture
def push(push_client: BraintrustClient, tmp_path: Path) -> Push:
    """Push a file with the given options into PROJECT/DATASET, checkpointing under tmp_path."""

    def run(file: Path, **options: Any) -> PushSummary:
        settings = {"project": PROJECT, "dataset": DATASET, "state_dir": tmp_path / "state"} | options
        return push_file(push_client, PushOptions(file=file, **settings), NullProgress())

    return run


# Round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
def test_csv_round_trip(emulator: Emulator, push: Push, tmp_path: Path, name: str) -> None:
    path = write_csv(tmp_path / name, 230)
    summary = push(path, batch_rows=50)
    assert (summary.rows_read, summary.rows_sent, summary.batches_sent) == (230, 230, 5)
    assert summary.unmapped_columns == ["note"]
    same_rows(synced_rows(emulator, tmp_path), CSV_AS_EVENTS.format(path=path), tmp_path)


def test_parquet_round_trip(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.parquet", 200)
    summary = push(path, batch_rows=64, concurrency=3)
    assert (summary.rows_sent, summary.batches_sent, summary.dataset_id) == (200, 4, dataset_id(emulator))
    same_rows(synced_rows(emulator, tmp_path), PARQUET_AS_EVENTS.format(path=path), tmp_path)


def test_jsonl_round_trip_with_hashed_ids(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl.gz", jsonl_rows(150))
    assert push(path).rows_sent == 150
    pushed = synced_rows(emulator, tmp_path)
    assert all(len(event["id"]) == 32 for event in pushed)
    same_rows(
        [{k: v for k, v in e.items() if k != "id"} for e in pushed],
        JSONL_AS_EVENTS.format(path=path),
        tmp_path,
    )


def test_mapping_flags_build_objects(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text('key,question,context,answer,source\nk1,Why?,"{""doc"": 1}",Because,web\n')
    push(path, id_column="key", input=("question", "context"), expected=("answer",), metadata=("source",))
    (row,) = emulator.store.live_rows("dataset", dataset_id(emulator))
    assert {k: row.get(k) for k in ("id", "input", "expected", "metadata")} == {
        "id": "k1",
        "input": {"question": "Why?", "context": {"doc": 1}},
        "expected": "Because",
        "metadata": {"source": "web"},
    }


def test_progress_counts_validated_then_acknowledged_rows(
    push_client: BraintrustClient, tmp_path: Path
) -> None:
    progress = RecordingProgress()
    options = PushOptions(
        file=write_csv(tmp_path / "d.csv", 90), project=PROJECT, dataset=DATASET, batch_rows=40
    )
    push_file(push_client, options.model_copy(update={"state_dir": tmp_path}), progress)
    assert progress.tasks == [
        {"description": "validate d.csv", "total": None, "rows": 90, "batches": 0, "closed": True},
        {"description": "push d.csv", "total": 90, "rows": 90, "batches": 3, "closed": True},
    ]


def test_progress_and_batches_count_only_the_rows_to_send(
    push_client: BraintrustClient, tmp_path: Path
) -> None:
    path = tmp_path / "messy.csv"
    rows = [f"{n % 45},row {n}" for n in range(50)] + ['50,"[oops"', '51,"[oops"']  # 5 ids repeat
    path.write_text("id,input\n" + "\n".join(rows) + "\n")
    progress = RecordingProgress()
    options = PushOptions(
        file=path, project=PROJECT, dataset=DATASET, batch_rows=20, on_error="skip",
        rejects=tmp_path / "rejects.jsonl", state_dir=tmp_path,
    )  # fmt: skip
    summary = push_file(push_client, options, progress)
    assert (summary.rows_read, summary.rows_skipped, summary.rows_duplicate) == (52, 2, 5)
    assert (summary.rows_sent, summary.batches, summary.batches_sent) == (45, 3, 3)
    assert progress.tasks[1] == {
        "description": "push messy.csv", "total": 45, "rows": 45, "batches": 3, "closed": True
    }  # fmt: skip


def test_format_flag_overrides_the_extension(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "export.txt", jsonl_rows(5))
    assert push(path, format="jsonl").rows_sent == 5


# Idempotence and resume ------------------------------------------------------------------------------


def test_a_rerun_that_sends_nothing_still_says_where_ids_come_from(push: Push, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [{"id": f"r{n}", "input": n, "note": "x"} for n in range(3)])
    first, again = push(path), push(path)
    assert again.already_complete and again.rows_read == 0
    # As the push did: `id_column: null` would mean ids hashed from each row's content.
    assert (again.id_column, again.unmapped_columns) == (first.id_column, first.unmapped_columns)
    assert (first.id_column, first.unmapped_columns) == ("id", ["note"])


def test_rerun_creates_no_duplicates(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", jsonl_rows(120))
    first = push(path, batch_rows=40)
    rows = emulator.store.live_rows("dataset", first.dataset_id)

    again = push(path, batch_rows=40)
    assert again.already_complete and again.rows_sent == 0 and again.dataset_id == first.dataset_id
    assert again.rows_read == 0  # known as pushed before the file is read again
    assert emulator.stats.rows_inserted[first.dataset_id] == 120

    forced = push(path, batch_rows=40, force=True)
    assert forced.rows_sent == 120
    assert emulator.stats.rows_inserted[first.dataset_id] == 240
    assert sorted(r["id"] for r in emulator.store.live_rows("dataset", first.dataset_id)) == sorted(
        r["id"] for r in rows
    )


def test_an_insert_answered_with_too_few_row_ids_ends_its_sentence_before_the_checkpoint_note(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 100)
    emulator.faults.add(FaultRule(kind="body", route="/insert", body='{"row_ids": []}', times=None, after=2))
    with pytest.raises(ServerUnavailable) as failed:
        push(path, batch_rows=25, concurrency=1)
    assert (
        "returned 0 row ids for 25 rows (the API, or a proxy before it, answered for other rows): the batch "
        "is not checkpointed, and a rerun sends it again. The 50 rows acknowledged so far are checkpointed"
    ) in str(failed.value)


def test_an_insert_refused_with_a_web_page_keeps_the_question_s_own_mark_before_the_checkpoint_note(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 100)
    page = "<html><body>Not here</body></html>"
    emulator.faults.add(FaultRule(kind="status", status=422, route="/insert", body=page, times=None, after=2))
    with pytest.raises(RequestError) as failed:
        push(path, batch_rows=25, concurrency=1)
    assert "is the API URL a Braintrust API? The 50 rows acknowledged so far are checkpointed" in str(
        failed.value
    )


def test_an_insert_answered_with_other_row_ids_is_not_taken_for_the_batch_and_a_rerun_sends_it(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    # As many ids as rows, but not theirs (an answer to another request): the batch was checkpointed as
    # sent, the push completed, and its 25 rows were never stored.
    path = write_csv(tmp_path / "data.csv", 100)
    others = orjson.dumps({"row_ids": [f"other-{n}" for n in range(25)]}).decode()
    emulator.faults.add(FaultRule(kind="body", route="/insert", body=others, times=1, after=2))
    with pytest.raises(ServerUnavailable, match="returned the row id 'other-0' for row 51, sent with the id"):
        push(path, batch_rows=25, concurrency=1)
    again = push(path, batch_rows=25, concurrency=1)
    assert again.rows_sent == 50
    assert len(emulator.store.live_rows("dataset", again.dataset_id)) == 100


def test_a_dataset_deleted_during_a_push_says_the_rows_sent_went_with_it_and_a_rerun_makes_it_anew(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    # It said the rows acknowledged were checkpointed and a rerun would "send the rest".
    path = write_csv(tmp_path / "data.csv", 100)
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=404, times=None, after=2))
    with pytest.raises(NotFoundError) as failed:
        push(path, batch_rows=25, concurrency=1)
    assert str(failed.value).endswith(
        "The 50 rows acknowledged so far went with the dataset: rerun the same command to push the whole "
        "file into a new one."
    )


def test_a_failed_push_resumes_with_only_the_unacknowledged_batches(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 300)
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=503, times=None, after=3))
    with pytest.raises(ServerUnavailable, match="rows acknowledged so far are checkpointed: rerun"):
        push(path, batch_rows=25, concurrency=1)
    assert emulator.stats.rows_inserted[dataset_id(emulator)] == 75

    # Failing again, the rerun counts the batches it resumed past as acknowledged, and keeps the status.
    emulator.faults.clear()
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=503, times=None, after=2))
    with pytest.raises(ServerUnavailable, match="The 125 rows acknowledged so far") as again:
        push(path, batch_rows=25, concurrency=1)
    assert again.value.status == 503 and "later. The 125 rows" in str(again.value)

    emulator.faults.clear()
    summary = push(path, batch_rows=25, concurrency=1)
    assert (summary.rows_resumed, summary.rows_sent, summary.batches_sent, summary.retries) == (
        125,
        175,
        7,
        0,
    )
    assert emulator.stats.rows_inserted[dataset_id(emulator)] == 300
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 300


def test_a_changed_file_is_pushed_again(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 20)
    push(path)
    write_csv(path, 30)
    assert push(path).rows_sent == 30
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 30


def test_a_file_edited_in_place_with_its_old_modification_time_put_back_is_pushed_again(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 20)
    push(path)
    before = path.stat()
    # As `touch -r`, `cp -p` or `rsync -t` leave it: other bytes, the same size and modification time.
    path.write_bytes(path.read_bytes().replace(b"answer 7,", b"ANSWER 7,"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert push(path).rows_sent == 20
    (edited,) = [r for r in emulator.store.live_rows("dataset", dataset_id(emulator)) if r["id"] == "row-7"]
    assert edited["expected"] == "ANSWER 7"


class TouchOnFirstAck(RecordingProgress):
    """Progress that moves a file's modification time when the push's first batch is acknowledged."""

    def __init__(self, file: Path) -> None:
        super().__init__()
        self._file = file

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        super().advance(rows, pages)
        if pages and self.tasks[-1]["batches"] == 1:
            stat = self._file.stat()
            os.utime(self._file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


@pytest.mark.parametrize("validate_first", [True, False], ids=["validate-first", "send-as-checked"])
def test_a_file_changed_while_it_is_pushed_is_not_marked_pushed(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path, validate_first: bool
) -> None:
    path = write_csv(tmp_path / "data.csv", 60)
    options = PushOptions(
        file=path,
        project=PROJECT,
        dataset=DATASET,
        batch_rows=10,
        concurrency=1,
        validate_first=validate_first,
        state_dir=tmp_path / "s",
    )
    with pytest.raises(PushError) as changed:
        push_file(push_client, options, TouchOnFirstAck(path))
    assert str(changed.value) == (
        "data.csv changed while it was pushed; push it again (rows already sent are replaced by id, "
        "not duplicated)"
    )
    again = push_file(push_client, options, NullProgress())
    assert not again.already_complete and again.rows_sent == 60
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 60


class AppendWhileValidating(RecordingProgress):
    """Progress that appends a row to a file once the push has validated its first rows."""

    def __init__(self, file: Path) -> None:
        super().__init__()
        self._file = file

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        super().advance(rows, pages)
        if rows and self.tasks[-1]["description"].startswith("validate") and self.tasks[-1]["rows"] == rows:
            with self._file.open("ab") as more:
                more.write(b"row-61,late,answer,{},t,x\n")


def test_a_file_changed_while_it_is_read_is_refused_before_anything_is_sent(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 60)
    options = PushOptions(file=path, project=PROJECT, dataset=DATASET, state_dir=tmp_path / "s")
    with pytest.raises(PushError) as changed:
        push_file(push_client, options, AppendWhileValidating(path))
    assert str(changed.value) == "data.csv changed while it was read; nothing was sent: push it again"
    assert not [key for key in emulator.stats.snapshot()["requests"] if key.startswith("POST")]


class CutWhileValidating(RecordingProgress):
    """Progress that cuts a file inside a line (or removes it) once the push has validated its first rows."""

    def __init__(self, file: Path, *, remove: bool = False) -> None:
        super().__init__()
        self._file, self._remove = file, remove

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        super().advance(rows, pages)
        if rows and self._file.exists() and self._file.stat().st_size > 1000:
            if self._remove:
                self._file.unlink()
            else:
                os.truncate(self._file, 1000)


def _rows_as(name: str) -> bytes:
    """40,000 rows, written as a file named `name` holds them."""
    rows = [b'{"id": "r%d", "input": "%s"}' % (n, b"x" * 200) for n in range(40_000)]
    if name.endswith(".json"):
        return b"[" + b",\n".join(rows) + b"]"
    lines = b"".join(row + b"\n" for row in rows)
    return gzip.compress(lines, mtime=0) if name.endswith(".gz") else lines


@pytest.mark.parametrize("validate_first", [True, False], ids=["validate-first", "send-as-checked"])
@pytest.mark.parametrize(
    ("name", "remove"),
    [("data.jsonl", False), ("data.json", False), ("data.jsonl.gz", False), ("data.jsonl", True)],
    ids=["jsonl", "json", "gzip", "removed"],
)
def test_a_file_cut_while_it_is_read_is_said_to_have_changed_not_to_hold_a_bad_row(
    push_client: BraintrustClient, tmp_path: Path, validate_first: bool, name: str, remove: bool
) -> None:
    # The line cut where the reading stood was "row 264507: invalid JSON", a row in neither file (a
    # JSON file's "near row …: premature EOF", a compressed one's "Truncated compressed stream"); sending
    # as it checked, the rerun was said to resume after the rows sent. A file removed: "No such file".
    path = tmp_path / name
    path.write_bytes(_rows_as(name))
    options = PushOptions(
        file=path, project=PROJECT, dataset=DATASET, validate_first=validate_first, state_dir=tmp_path / "s"
    )
    with pytest.raises(PushError) as changed:
        push_file(push_client, options, CutWhileValidating(path, remove=remove))
    assert str(changed.value) == (
        f"{name} changed while it was read; nothing was sent: push it again"
        if validate_first
        else f"{name} changed while it was pushed; push it again (rows already sent are replaced by id, not "
        "duplicated)"
    )


def test_batches_go_out_concurrently_but_never_more_than_allowed(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 80)
    # Slow enough that every batch the client allows is in flight together.
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.3, times=None))
    summary = push(path, batch_rows=10, concurrency=3)
    assert summary.batches_sent == 8
    # Counted by the server, whatever the timing: exactly the allowed number at once, never more.
    assert emulator.stats.most_in_flight["dataset.insert"] == 3


def test_a_slow_batch_does_not_hold_back_the_batches_after_it(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 30)
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=1.5, times=1))
    push(path, batch_rows=10, concurrency=2)
    rows = emulator.store.live_rows("dataset", dataset_id(emulator))
    versions = {row["id"]: int(row["_xact_id"]) for row in rows}
    batches = [[versions[f"row-{n}"] for n in range(first, first + 10)] for first in (0, 10, 20)]
    # The fault holds whichever of the first two batches reaches the server first. While it was held,
    # the other slot sent the other one and then the third: waiting for both slots to free before
    # sending more would have put the third last.
    held = max(range(3), key=lambda batch: min(batches[batch]))
    assert held in (0, 1) and max(batches[2]) < min(batches[held])


# Faults ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_rows", "splits", "batches"),
    # Halves of 25 rows fit: a batch of 50 is split once, one of 100 three times (in two, then each half).
    [(50, 2, 2), (100, 3, 1)],
)
def test_413_splits_batches_until_they_fit(
    emulator: Emulator, push: Push, tmp_path: Path, batch_rows: int, splits: int, batches: int
) -> None:
    path = write_csv(tmp_path / "data.csv", 100)
    emulator.max_request_bytes = 4_000
    summary = push(path, batch_rows=batch_rows)
    assert (summary.splits, summary.batches_sent, summary.rows_sent) == (splits, batches, 100)
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 100


def test_413_on_a_single_row_names_it(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    # The big row is last: a pair holding it is split before the row alone is refused.
    path = write_jsonl(tmp_path / "data.jsonl", [{"input": "x"}, {"input": "z"}, {"input": "y" * 5_000}])
    emulator.max_request_bytes = 1_000
    with pytest.raises(PushError) as refused:
        push(path)
    # Rows 1 and 2 landed before it, in the batch's first half: the message does not say nothing was sent.
    assert str(refused.value) == (
        "data.jsonl row 3: the API refused the row as too large (HTTP 413) even when sent alone (no batch "
        "was acknowledged whole, but rows of those sent may have reached the dataset: the file mended and "
        "pushed again replaces them by id rather than duplicating them)"
    )
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 2


def test_a_batch_the_api_refuses_stops_the_push_before_the_batches_after_it(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 150)
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=400, after=3, times=None))
    # The refused batch is halved down to its first row, which the API still refuses.
    with pytest.raises(
        PushError, match=r"^data\.csv row 76: the API refused the row even when sent alone \("
    ):
        push(path, batch_rows=25, concurrency=1)
    assert emulator.stats.rows_inserted[dataset_id(emulator)] == 75
    emulator.faults.clear()
    assert push(path, batch_rows=25, concurrency=1).rows_resumed == 75


def test_a_batch_the_api_refuses_once_is_sent_again_in_halves(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "data.csv", 100)
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=400, after=1, times=1))
    summary = push(path, batch_rows=25, concurrency=1)
    assert (summary.rows_sent, summary.splits) == (100, 1)
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 100


def test_429_with_retry_after_is_waited_out(emulator: Emulator, push: Push, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 60)
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=429, retry_after="1", times=2))
    summary = push(path, batch_rows=20, concurrency=1)
    assert (summary.retries, summary.rows_sent) == (2, 60)
    assert summary.seconds >= 2
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 60


@pytest.mark.parametrize("kind", ["drop", "drop_after_apply", "truncate"])
def test_lost_connections_and_acks_leave_no_duplicates(
    emulator: Emulator, push: Push, tmp_path: Path, kind: str
) -> None:
    path = write_csv(tmp_path / "data.csv", 80)
    emulator.faults.add(FaultRule(kind=kind, route="/insert", times=2, after=1))  # type: ignore[arg-type]
    assert push(path, batch_rows=20).rows_sent == 80
    assert len(emulator.store.live_rows("dataset", dataset_id(emulator))) == 80


def test_wrong_key_fails_fast(emulator: Emulator, tmp_path: Path) -> None:
    from connector.config import ApiSettings

    path = write_csv(tmp_path / "data.csv", 3)
    with (
        BraintrustClient(ApiSettings(api_url=emulator.url, api_key="wrong")) as client,
        pytest.raises(AuthError),
    ):
        push_file(
            client, PushOptions(file=path, project="p", dataset="d", state_dir=tmp_path), NullProgress()
        )


# Bad input --------------------------------------------------------------------------------------------


BAD_FILES: dict[str, tuple[bytes, dict[str, Any], str]] = {
    "invalid JSON": (
        b'input,expected\nok,1\n"{""a"": }",2\n',
        {},
        'bad.csv row 2, column "input": invalid JSON (unexpected character, expected a JSON value at char 6)',
    ),
    "missing column": (b"question,answer\nq,a\n", {"input": ("question", "context")}, "bad.csv: no column"),
    "wrong tags type": (
        b'{"input": "q", "tags": [1]}\n',
        {},
        'bad.jsonl row 1, column "tags": tags must be strings',
    ),
    "not utf-8": (
        b"input\nfine\n\xc3\x28\n",
        {},
        'bad.csv row 2, column "input": not valid UTF-8 (byte 0xc3 at offset 0)',
    ),
    "empty": (b"", {}, "bad.csv is empty"),
    "wrong field count": (
        b"input,expected\nq,a\nq,a,extra\n",
        {},
        "bad.csv row 2: expected 2 columns, found 3",
    ),
    "empty id": (b"id,input\n1,q\n,q\n", {}, 'bad.csv row 2, column "id": empty id'),
    "row too large": (b"input\n" + b"x" * (6 << 20) + b"\n", {}, "bad.csv row 1: the row is 6,291,"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_fails_before_creating_or_sending_anything(
    emulator: Emulator, push: Push, tmp_path: Path, case: str
) -> None:
    content, options, message = BAD_FILES[case]
    path = tmp_path / ("bad.jsonl" if content.startswith(b"{") else "bad.csv")
    path.write_bytes(content)
    with pytest.raises(PushError) as error:
        push(path, **options)
    assert str(error.value).startswith(message)
    assert emulator.stats.snapshot()["rows_inserted"] == {}
    assert not [key for key in emulator.stats.snapshot()["requests"] if key.startswith("POST")]


def test_skip_mode_sends_valid_rows_and_writes_rejects(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b'id,input,tags\n1,ok,a\n2,"[oops",b\n3,fine,\n4,\xff,c\n5,"{""k"": 5}","[""x""]"\n')
    rejects = tmp_path / "rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects)
    assert (summary.rows_read, summary.rows_sent, summary.rows_skipped) == (5, 3, 2)
    assert sorted(row["id"] for row in emulator.store.live_rows("dataset", summary.dataset_id)) == [
        "1",
        "3",
        "5",
    ]
    rejected = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["row"], r["column"], r["reason"][:20], r["values"]["id"]) for r in rejected] == [
        (2, "input", "invalid JSON (unexpe", "2"),
        (4, "input", "not valid UTF-8 (byt", "4"),
    ]


def test_the_cycle_collector_is_as_it_was_after_a_push_or_a_failed_scan(
    emulator: Emulator, push: Push, tmp_path: Path
) -> None:
    # The scan pauses Python's cycle collector; a long-lived process (Dagster's) must get it back.
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,input\n1,q\n,q\n")
    push(write_csv(tmp_path / "data.csv", 10))
    assert gc.isenabled()
    with pytest.raises(PushError):
        push(bad)
    assert gc.isenabled()
    gc.disable()
    try:
        push(write_csv(tmp_path / "more.csv", 10))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_dry_run_validates_and_creates_nothing(emulator: Emulator, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 120)
    summary = push_file(
        None,
        PushOptions(file=path, project=PROJECT, dataset=DATASET, batch_rows=50, dry_run=True),
        NullProgress(),
    )
    assert (summary.rows_read, summary.batches, summary.rows_sent, summary.dataset_id) == (120, 3, 0, None)
    assert emulator.stats.snapshot()["requests"] == {}


def test_checkpoints_follow_the_state_dir_setting_when_no_flag_names_one(
    push_client: BraintrustClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BT_SYNC_STATE_DIR", str(tmp_path / "from-env"))
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "input": 1}\n')
    push_file(push_client, PushOptions(file=path, project="p", dataset="d"), NullProgress())
    assert list((tmp_path / "from-env" / "push").glob("*.json"))
