"""`bt-sync push --no-validate-first`: each batch goes once its rows are checked, and nothing is lost.

What the push promises when it validates first, it keeps where it can while sending as it checks:
rows sharing an id land as the last of them, a bad row stops the push in one line that says what was
sent, and pushing the mended file again lands every row once. Kills and faults mid-push are in
`test_faults.py`, for both ways.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import PushError
from connector.progress import NullProgress
from connector.push.options import PushOptions
from connector.push.run import push_file
from tests.push.helpers import RecordingProgress, inserts, run_cli, write_jsonl

ROWS = 3000
BAD_ROW = 2500


def numbered_rows(count: int, bad_row: int | None = None) -> list[dict[str, Any] | bytes]:
    """Rows `r1`... with their number as input; row `bad_row` (from 1) is not JSON."""
    return [b'{"id": "broken' if n == bad_row else {"id": f"r{n}", "input": n} for n in range(1, count + 1)]


def stored(emulator: Emulator, dataset: str = "d") -> dict[str, object]:
    """Each stored row's input, by id."""
    (found,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name=dataset))
    return {row["id"]: row["input"] for row in emulator.store.live_rows("dataset", found["id"])}


def push(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path, *args: str
) -> tuple[int, str, str]:
    where = ("--project", "p", "--dataset", "d", "--no-validate-first", "--batch-rows", "100")
    return run_cli(emulator, tmp_path, capsys, str(path), *where, *args)


def repeating_ids(tmp_path: Path) -> PushOptions:
    """Options pushing 60 rows, four a batch, as it checks: each batch's first row has an id of its own,
    the others share two ids, which repeat within each batch and across batches in flight."""
    rows: list[dict[str, Any] | bytes] = [
        {"id": f"u{n}" if n % 4 == 0 else f"id{n % 2}", "input": n} for n in range(60)
    ]
    path = write_jsonl(tmp_path / "repeats.jsonl", rows)
    return PushOptions(
        file=path, project="p", dataset="d", validate_first=False, batch_rows=4, state_dir=tmp_path / "s"
    )


# What the repeating ids leave: each row with an id of its own, and the last row of each shared id.
LAST_OF_EACH_ID = {**{f"u{n}": n for n in range(0, 60, 4)}, "id0": 58, "id1": 59}


def test_rows_sharing_an_id_land_as_the_last_of_them_whatever_order_requests_finish_in(
    emulator: Emulator, tmp_path: Path
) -> None:
    options = repeating_ids(tmp_path)
    # The first request is answered last: without keeping rows sharing an id in order, an early row
    # of each id would be stored after the later ones.
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.5))
    with BraintrustClient(ApiSettings(api_url=emulator.url, api_key=emulator.api_key)) as client:
        summary = push_file(client, options, NullProgress())
    assert stored(emulator) == LAST_OF_EACH_ID
    assert gc.get_freeze_count() == 0  # the objects the push froze for its collections are thawed
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="d"))
    assert (summary.dataset_id, summary.validate_first) == (dataset["id"], False)
    assert (summary.rows_sent, summary.rows_duplicate) == (60, 43)
    # Each batch of four holds an id twice, so it goes as two requests, one after the other.
    assert (summary.batches_sent, emulator.stats.requests[("POST", "dataset.insert")]) == (15, 30)
    assert summary.warnings == [
        "43 rows of repeats.jsonl were sent, then replaced: a later row has the same id, and the last "
        'one wins (e.g. id "id1" on rows 2, 4, 6, 8, 10)'
    ]


def test_a_batch_that_fails_while_a_later_one_waits_for_it_fails_the_push(
    emulator: Emulator, tmp_path: Path
) -> None:
    options = repeating_ids(tmp_path)
    # Refused, not retried: the second batch, which shares ids with the first, waits for it.
    emulator.faults.add(FaultRule(kind="status", status=400, route="/insert", times=None))
    with BraintrustClient(ApiSettings(api_url=emulator.url, api_key=emulator.api_key)) as client:
        with pytest.raises(PushError, match="the API refused the row even when sent alone"):
            push_file(client, options, NullProgress())
        emulator.faults.clear()
        summary = push_file(client, options, NullProgress())
    assert not summary.already_complete
    assert stored(emulator) == LAST_OF_EACH_ID


def test_a_file_whose_every_row_is_rejected_creates_nothing(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"id": "a", "input": 1, "tags": 5}, b'{"id": "broken'])
    rejects = tmp_path / "rejects.jsonl"
    code, out, err = push(emulator, tmp_path, capsys, path, "--on-error", "skip", "--rejects", str(rejects))
    stored = (
        f"no row of rows.jsonl was stored: 2 rows rejected (written to {rejects}); mend them and push again"
    )
    assert (code, err.strip()) == (1, f"bt-sync: error: {stored}")
    assert out.startswith("pushed nothing of rows.jsonl, and created no dataset")
    assert len(rejects.read_bytes().splitlines()) == 2
    assert emulator.store.list_objects("project", ListQuery()) == []


def test_progress_shows_rows_sent_without_a_total_it_cannot_know_yet(
    push_client: BraintrustClient, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", numbered_rows(ROWS))
    options = PushOptions(file=path, project="p", dataset="d", validate_first=False, batch_rows=500)
    progress = RecordingProgress()
    summary = push_file(push_client, options.model_copy(update={"state_dir": tmp_path}), progress)
    assert summary.rows_sent == ROWS
    # Sending as it checks, the push has read only the first chunk of rows when it starts sending: a
    # total then would be theirs, and the bar would run past its end.
    assert [(task["description"], task["total"]) for task in progress.tasks] == [
        ("validate rows.jsonl", None),
        ("push rows.jsonl", None),
    ]
    assert sum(task["rows"] for task in progress.tasks) == 2 * ROWS, "rows checked, and rows sent"


def test_a_dry_run_says_what_sending_as_it_checks_would_do(
    push_client: BraintrustClient, tmp_path: Path
) -> None:
    rows: list[dict[str, Any] | bytes] = [{"id": f"id{n % 3}", "input": n} for n in range(6)]
    path = write_jsonl(tmp_path / "repeats.jsonl", rows)
    options = PushOptions(file=path, project="p", dataset="d", validate_first=False, batch_rows=2)
    summary = push_file(None, options.model_copy(update={"dry_run": True}), NullProgress())
    assert (summary.rows_read, summary.rows_sent, summary.rows_duplicate) == (6, 0, 3)
    assert summary.warnings == [
        "3 rows of repeats.jsonl would be sent, then replaced: a later row has the same id, and the last "
        'one wins (e.g. id "id0" on rows 1, 4)'
    ]
    # Every row is sent, in the batches the push makes (not those of the rows validating first sends).
    sent = push_file(push_client, options.model_copy(update={"state_dir": tmp_path}), NullProgress())
    assert (sent.rows_sent, sent.batches) == (6, 3)
    assert summary.batches == sent.batches


def test_a_bad_row_stops_the_push_saying_what_was_sent_and_the_mended_file_lands_every_row_once(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", numbered_rows(ROWS, bad_row=BAD_ROW))
    code, out, err = push(emulator, tmp_path, capsys, path)
    assert (code, out) == (1, "")
    sent = re.fullmatch(
        rf"bt-sync: error: rows.jsonl row {BAD_ROW}: invalid JSON \(.*\) \(([\d,]+) rows were sent and "
        r"are checkpointed: the same file pushed again resumes after them, and the file mended "
        r"replaces them by id rather than duplicating them\)\n",
        err,
    )
    assert sent, err
    landed = stored(emulator)
    # Rows go in batches as they are checked: some before the bad row were sent, none after it.
    assert 0 < len(landed) == int(sent[1].replace(",", "")) == inserts(emulator) < BAD_ROW
    assert max(int(str(key)[1:]) for key in landed) < BAD_ROW

    # The same file again resumes after the rows sent, and stops at the same row.
    code, _, again = push(emulator, tmp_path, capsys, path)
    assert (code, again, inserts(emulator)) == (1, err, len(landed))

    write_jsonl(path, numbered_rows(ROWS))
    code, out, err = push(emulator, tmp_path, capsys, path)
    assert (code, err) == (0, "")
    assert stored(emulator) == {f"r{n}": n for n in range(1, ROWS + 1)}


def test_a_bad_first_row_creates_and_sends_nothing(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", numbered_rows(10, bad_row=2))
    code, _, err = push(emulator, tmp_path, capsys, path)
    assert code == 1
    assert err.startswith("bt-sync: error: rows.jsonl row 2: invalid JSON")
    assert err.endswith(" (nothing was sent)\n")
    assert emulator.store.list_objects("project", ListQuery()) == []


def test_skipped_rows_go_to_the_rejects_file_and_the_others_are_sent(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", numbered_rows(ROWS, bad_row=BAD_ROW))
    rejects = tmp_path / "rejects.jsonl"
    code, out, err = push(emulator, tmp_path, capsys, path, "--on-error", "skip", "--rejects", str(rejects))
    assert (code, err) == (0, "")
    assert out.startswith(f"pushed {ROWS - 1:,} rows of rows.jsonl")
    assert [orjson.loads(line)["row"] for line in rejects.read_bytes().splitlines()] == [BAD_ROW]
    assert len(stored(emulator)) == ROWS - 1


def test_a_json_file_is_mapped_by_the_keys_of_its_first_row(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[dict[str, Any] | bytes] = [{"id": "a", "input": 1}, {"id": "b", "input": 2, "expected": 3}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    code, out, err = push(emulator, tmp_path, capsys, path, "--json")
    assert code == 0
    assert err == (
        "bt-sync: warning: rows.jsonl: keys first seen after its first row were not sent (expected): "
        "with --no-validate-first a JSON file is mapped by its first row's keys; push it again "
        "without it to send them\n"
    )
    assert orjson.loads(out)["unmapped_columns"] == ["expected"]
    assert stored(emulator) == {"a": 1, "b": 2}
    # A JSON array alike: it was mapped by the keys of its first 1,024 rows, sending `expected` unsaid.
    array = tmp_path / "rows.json"
    array.write_bytes(orjson.dumps(rows))
    code, _, err = push(emulator, tmp_path, capsys, array, "--dataset", "array")
    assert (code, err.split(" were not sent")[0]) == (
        0,
        "bt-sync: warning: rows.json: keys first seen after its first row",
    )
    (found,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="array"))
    landed = emulator.store.live_rows("dataset", found["id"])
    assert sorted((row["id"], row["input"], row.get("expected")) for row in landed) == [
        ("a", 1, None),
        ("b", 2, None),
    ]
    # Without ids, the rows pushed again are others: the advice says where they go.
    unnamed = write_jsonl(tmp_path / "unnamed.jsonl", [{"input": 1}, {"input": 2, "expected": 3}])
    code, _, err = push(emulator, tmp_path, capsys, unnamed, "--dataset", "other")
    assert code == 0
    assert err.splitlines()[0] == (
        "bt-sync: warning: unnamed.jsonl: keys first seen after its first row were not sent (expected): "
        "with --no-validate-first a JSON file is mapped by its first row's keys; push it again without it "
        "into a new dataset (without an id column, the rows sent now would stay beside them) to send them"
    )

    code, _, err = push(emulator, tmp_path, capsys, path, "--expected", "expected")
    assert code == 1
    assert err == (
        'bt-sync: error: rows.jsonl: no column "expected" (from --expected); the first row has '
        'columns: "id", "input"\n'
    )


def test_a_query_result_is_always_validated_first() -> None:
    with pytest.raises(ValidationError, match="validate_first\n  applies to a FILE, not to a query's result"):
        PushOptions(sql="SELECT 1 AS id", project="p", dataset="d", validate_first=False)


def test_a_row_refused_after_parts_of_its_batch_landed_does_not_say_nothing_was_sent(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One batch of 40 rows over four ids goes as requests one after the other; the third is refused.
    path = write_jsonl(tmp_path / "rows.jsonl", [{"id": f"k{n % 4}", "input": n} for n in range(40)])
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=413, after=2, times=None))
    code, _, err = push(emulator, tmp_path, capsys, path)
    assert code == 1
    assert inserts(emulator) > 0
    assert "nothing was sent" not in err
    assert err.endswith(
        "(no batch was acknowledged whole, but rows of those sent may have reached the dataset: the file "
        "mended and pushed again replaces them by id rather than duplicating them)\n"
    )
