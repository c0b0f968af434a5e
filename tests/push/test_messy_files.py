"""Pushing the files people really have: mislabelled, oddly typed, repeated, edited; and risky rejects paths.

Every test runs the real CLI or `push_file` against the real emulator and looks at what the
emulator stored, the files on disk, the exit code and the one-line message.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import json
import lzma
import os
import re
import subprocess
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connector.api.client import BraintrustClient
from connector.display import counted
from connector.emulator import Emulator, ListQuery
from connector.errors import PushError
from connector.progress import NullProgress
from connector.push.run import PushOptions, PushSummary, push_file
from tests.helpers import CLI
from tests.push.helpers import push_process, run_cli

PROJECT, DATASET = "messy", "files"


@pytest.fixture
def push(push_client: BraintrustClient, tmp_path: Path) -> Any:
    """Push a file with the given options into PROJECT/DATASET, checkpointing under tmp_path."""

    def run(file: Path, **options: Any) -> PushSummary:
        settings = {"project": PROJECT, "dataset": DATASET, "state_dir": tmp_path / "state"} | options
        return push_file(push_client, PushOptions(file=file, **settings), NullProgress())

    return run


def stored(emulator: Emulator, name: str = DATASET) -> dict[str, dict[str, Any]]:
    """The dataset's live rows by id."""
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name=PROJECT, name=name))
    return {row["id"]: row for row in emulator.store.live_rows("dataset", dataset["id"])}


def nothing_created(emulator: Emulator) -> bool:
    return emulator.store.list_objects("project", ListQuery()) == [] and not emulator.stats.rows_inserted


def cli(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path, *args: str
) -> tuple[int, str, str]:
    code, out, err = run_cli(
        emulator, tmp_path, capsys, str(path), "--project", PROJECT, "--dataset", DATASET, *args
    )
    # One line at most on stderr per message, never a raw control byte.
    assert not [c for c in err if c < " " and c != "\n"], err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return code, out, err


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


# 11. --rejects and --state-dir are checked before anything is created or written ----------------------


def rejects_naming_the_input(tmp_path: Path, how: str) -> tuple[Path, str]:
    # JSON Lines, which a rejects file is: a name ending in another format's suffix is refused as such.
    data = tmp_path / "data.jsonl"
    if how == "same path":
        return data, str(data)
    if how == "another spelling":
        return data, str(tmp_path / ".." / tmp_path.name / "data.jsonl")
    link = tmp_path / "link.jsonl"
    if how == "hard link":
        os.link(data, link)
    else:
        link.symlink_to(data)
    return data, str(link)


@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link", "symlink"])
def test_rejects_naming_the_input_file_is_refused_and_the_input_is_kept(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    content = b'{"input": "q", "expected": "a"}\n[bad\n'
    (tmp_path / "data.jsonl").write_bytes(content)
    data, rejects = rejects_naming_the_input(tmp_path, how)
    code, out, err = cli(emulator, tmp_path, capsys, data, "--on-error", "skip", "--rejects", rejects)
    assert (code, out) == (2, "")
    assert (
        err
        == f"bt-sync: error: --rejects {rejects} is the input file; writing rejects there would destroy it\n"
    )
    assert data.read_bytes() == content
    assert nothing_created(emulator)


@pytest.mark.parametrize(
    ("rejects", "message"),
    [
        ("missing/rejects.jsonl", "--rejects {tmp}/missing/rejects.jsonl: no such directory {tmp}/missing"),
        # The input file itself taken for a directory: it said "no such directory", of a file that is there.
        (
            "data.csv/rejects.jsonl",
            "--rejects {tmp}/data.csv/rejects.jsonl: {tmp}/data.csv is a file where a directory is needed",
        ),
        ("", "--rejects {tmp} is a directory; name a file"),
    ],
)
def test_a_rejects_path_that_cannot_be_written_is_one_line_before_anything_is_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], rejects: str, message: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("input\nq\n")
    path = str(tmp_path / rejects) if rejects else str(tmp_path)
    code, out, err = cli(emulator, tmp_path, capsys, data, "--on-error", "skip", "--rejects", path)
    assert (code, out, err) == (2, "", f"bt-sync: error: {message.format(tmp=tmp_path)}\n")
    assert nothing_created(emulator)


@pytest.mark.parametrize(("stream", "named"), [("stdout", "standard output"), ("stderr", "standard error")])
def test_the_command_s_own_output_as_the_rejects_file_is_refused(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], stream: str, named: str
) -> None:
    # `--rejects /dev/stdout > out.txt`: the file was replaced as the push started, then the summary written
    # over the rejects from its start; through a pipe, `--json`'s one document came after them.
    data = tmp_path / "data.csv"
    data.write_text('id,input\n1,a\n2,"{bad"\n')
    rejects = f"/dev/{stream}"
    code, out, err = cli(emulator, tmp_path, capsys, data, "--on-error", "skip", "--rejects", rejects)
    assert (code, out) == (2, "")
    assert err == (
        f"bt-sync: error: --rejects /dev/{stream} is this command's {named}, which the push would replace: "
        "name a file of its own\n"
    )
    assert nothing_created(emulator)


def test_rejects_to_dev_null_with_the_output_there_too_is_taken(tmp_path: Path) -> None:
    # `--rejects /dev/null >/dev/null` (a cron job's): the device is standard output's too, and was refused.
    data = tmp_path / "data.csv"
    data.write_text('id,input\n1,a\n2,"{bad"\n')
    args = ["push", str(data), "--project", "p", "--dataset", "d", "--dry-run", "--on-error", "skip"]
    command = [*CLI, *args, "--rejects", "/dev/null"]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_rejects_path_holding_another_file_is_refused_and_kept(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    # The warehouse's own DuckDB file, or an analyst's, was emptied, even by a dry run rejecting nothing.
    data = tmp_path / "data.csv"
    data.write_text("input\nq\n")
    theirs = tmp_path / "sales.duckdb"
    with duckdb.connect(str(theirs)) as database:
        database.execute("CREATE TABLE sales AS SELECT 1 AS amount")
    kept = theirs.read_bytes()
    dry = ("--dry-run",) if dry_run else ()
    code, out, err = cli(
        emulator, tmp_path, capsys, data, "--on-error", "skip", "--rejects", str(theirs), *dry
    )
    said = f"--rejects {theirs} holds something else than the rejects of a push, which it would replace"
    assert (code, out, err) == (2, "", f"bt-sync: error: {said}: name a new file, or delete it first\n")
    assert theirs.read_bytes() == kept
    assert nothing_created(emulator)
    # An earlier push's rejects (a dry run's, for a dry run), and an empty file, are replaced as before.
    record = b'{"file":"data.csv","row":2,"column":"input","reason":"r","values":{}' + (
        b',"dry_run":true}\n' if dry_run else b"}\n"
    )
    for earlier in (record, b""):
        theirs.write_bytes(earlier)
        code, _, err = cli(
            emulator, tmp_path, capsys, data, "--on-error", "skip", "--rejects", str(theirs), *dry
        )
        assert code == 0, err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_name_that_is_not_utf8_is_one_line_before_anything_is_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    # Written under a UTF-8 name, then renamed: pyarrow cannot write under the other name either.
    readable = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.table({"input": ["q"]}), readable)
    else:
        readable.write_text("input\nq\n")
    data = readable.rename(tmp_path / os.fsdecode(b"data\xff" + suffix.encode()))
    code, out, err = cli(emulator, tmp_path, capsys, data)
    message = f"FILE {tmp_path}/data\\xff{suffix}: the name is not valid UTF-8; rename it"
    assert (code, out, err) == (2, "", f"bt-sync: error: {message}\n")

    readable.write_text("input\nq\n")
    rejects = tmp_path / os.fsdecode(b"rejects\xff.jsonl")
    code, out, err = cli(
        emulator, tmp_path, capsys, readable, "--on-error", "skip", "--rejects", str(rejects)
    )
    message = f"--rejects {tmp_path}/rejects\\xff.jsonl: the name is not valid UTF-8; rename it"
    assert (code, out, err) == (2, "", f"bt-sync: error: {message}\n")
    assert nothing_created(emulator)


def test_a_pipe_is_refused_in_one_line_before_anything_is_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = tmp_path / "rows.csv"
    os.mkfifo(pipe)
    code, out, err = cli(emulator, tmp_path, capsys, pipe)
    message = f"{pipe} is not a regular file (a pipe?): write its content to a file, then push that"
    assert (code, out, err) == (1, "", f"bt-sync: error: {message}\n")
    assert nothing_created(emulator)


def test_a_state_dir_that_is_a_file_is_refused_before_anything_is_created(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("input\nq\n")
    with pytest.raises(Exception, match=r"--state-dir .*data\.csv/state: .*data\.csv is not a directory"):
        push(data, state_dir=data / "state")
    assert nothing_created(emulator)


# 12. JSON keys first seen late ---------------------------------------------------------------------------


def late_key_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"id": str(n), "input": f"q{n}"} for n in range(1500)]
    for n in (1200, 1499):
        rows[n] |= {"expected": f"a{n}", "note": "late"}
    return rows


def test_a_jsonl_key_first_seen_after_the_first_chunk_is_sent(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    summary = push(jsonl(tmp_path / "late.jsonl", late_key_rows()), batch_rows=300)
    # The late key changes the mapping, so the file is read again: each row is counted once.
    assert (summary.rows_read, summary.rows_sent, summary.unmapped_columns) == (1500, 1500, ["note"])
    rows = stored(emulator)
    assert (rows["1200"]["expected"], rows["1499"]["expected"], rows["7"].get("expected")) == (
        "a1200",
        "a1499",
        None,
    )


def test_a_flag_naming_a_late_jsonl_key_finds_it(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "late.jsonl", late_key_rows())
    code, out, _ = cli(emulator, tmp_path, capsys, path, "--expected", "note", "--metadata", "expected")
    assert code == 0 and out.startswith("pushed 1,500 rows")
    row = stored(emulator)["1200"]
    assert (row["expected"], row["metadata"]) == ("late", {"expected": "a1200"})
    code, _, err = cli(emulator, tmp_path, capsys, path, "--expected", "nowhere")
    assert (code, err) == (
        1,
        'bt-sync: error: late.jsonl: no column "nowhere" (from --expected); '
        'the file has columns: "id", "input", "expected", "note"\n',
    )


def test_a_flag_naming_a_late_jsonl_key_that_is_its_field_finds_it(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lines holding only fields under their own names go as written: the late key must be learnt.
    rows = [
        {"id": str(n), "input": f"q{n}"} | ({"expected": f"a{n}"} if n >= 1200 else {}) for n in range(1500)
    ]
    code, out, err = cli(
        emulator, tmp_path, capsys, jsonl(tmp_path / "late.jsonl", rows), "--expected", "expected"
    )
    assert (code, err) == (0, "") and out.startswith("pushed 1,500 rows")
    stored_rows = stored(emulator)
    assert (stored_rows["1200"]["expected"], stored_rows["7"].get("expected")) == ("a1200", None)


# 13. Repeated column names ------------------------------------------------------------------------------


def test_a_csv_header_repeating_a_name_is_refused(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("input,expected,input\nq,a,r\n")
    code, _, err = cli(emulator, tmp_path, capsys, path)
    assert (code, err) == (
        1,
        'bt-sync: error: dup.csv: more than one column is named "input"; rename them so none is lost\n',
    )
    assert nothing_created(emulator)


def test_parquet_columns_or_struct_fields_repeating_a_name_are_refused(tmp_path: Path, push: Any) -> None:
    columns = pa.table({"input": ["q"], "expected": ["a"]}).rename_columns(["input", "input"])
    pq.write_table(columns, tmp_path / "dup.parquet")
    with pytest.raises(PushError, match=r'^dup\.parquet: more than one column is named "input"'):
        push(tmp_path / "dup.parquet")

    struct = pa.StructArray.from_arrays([pa.array([1]), pa.array([2])], names=["k", "k"])
    pq.write_table(pa.table({"input": struct}), tmp_path / "nested.parquet")
    with pytest.raises(PushError, match=r'column "input": .*it has two fields named "k"'):
        push(tmp_path / "nested.parquet")


# A quote never closed: pyarrow ends the value at the end of the file ------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_quote_never_closed_in_the_last_column_is_refused_not_taking_in_the_rows_after_it(
    emulator: Emulator, tmp_path: Path, push: Any, compress: bool
) -> None:
    content = b'id,input,expected\n1,ok,x\n2,bad,"x\n3,c,x\n4,d,x\n'
    path = tmp_path / ("open.csv.gz" if compress else "open.csv")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(PushError) as error:
        push(path)
    assert str(error.value) == (
        f'{path.name} row 2, column "expected": its quoted value is never closed, so it takes in the rest of '
        'the file (3 lines) as its text: close the quote (a quote inside a quoted value is written "")'
    )
    assert nothing_created(emulator)

    rejects = tmp_path / "rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    assert orjson.loads(rejects.read_bytes())["values"]["expected"] == "x\n3,c,x\n4,d,x\n"


@pytest.mark.parametrize(
    ("lines", "found", "taken"),
    [
        # Closed by the next quote, a few rows on: the rows between were read as part of one row.
        (b'1,ok,x\n2,"bad,x\n3,c,x\n4,"quoted, 4",x\n5,e,x\n', 4, 3),
        # Never closed.
        (b'1,ok,x\n2,"bad,x\n3,c,x\n4,d,x\n', 2, 3),
        # Closed, holding a line break, in a row a column short: no quote left open.
        (b'1,ok,x\n2,"two\nlines"\n3,c,x\n', 2, 0),
    ],
    ids=["closed-later", "never-closed", "closed-in-a-short-row"],
)
def test_a_quote_left_open_in_a_middle_column_names_the_lines_it_took_in(
    emulator: Emulator, tmp_path: Path, push: Any, lines: bytes, found: int, taken: int
) -> None:
    # The rows it took in were left out with it, the message saying only that it had the wrong width.
    path = tmp_path / "open.csv"
    path.write_bytes(b"id,input,expected\n" + lines)
    with pytest.raises(PushError) as error:
        push(path)
    opened = (
        f" across {taken} lines: a quoted value runs to the next quote, so a quote left open takes in the "
        'lines after it (a quote inside a quoted value is written "")'
    )
    assert str(error.value) == f"open.csv row 2: expected 3 columns, found {found}{opened if taken else ''}"
    assert nothing_created(emulator)


@pytest.mark.parametrize(
    ("last_line", "value"),
    [
        (b'2,"two\nlines"\n', "two\nlines"),
        (b'2,"two\r\nlines"\r\n', "two\r\nlines"),
        (b'2,"ends in a quote\n"""', 'ends in a quote\n"'),
        (b'2,"a line break last\n"', "a line break last\n"),
    ],
)
def test_a_closed_quoted_value_with_line_breaks_at_the_end_of_the_file_is_pushed_as_written(
    emulator: Emulator, tmp_path: Path, push: Any, last_line: bytes, value: str
) -> None:
    path = tmp_path / "closed.csv"
    path.write_bytes(b"id,input\n1,one\n" + last_line)
    push(path)
    assert {key: row["input"] for key, row in stored(emulator).items()} == {"1": "one", "2": value}


# A header repeated mid-file: two CSV files joined with `cat` -------------------------------------------

REPEATED = "it repeats the header, as a line of two CSV files joined into one does: delete the line"


def test_a_header_repeated_mid_file_fails_the_push_naming_its_row_and_is_skipped_with_on_error_skip(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "all.csv"
    path.write_text("id,input,expected\n1,hello,world\nid,input,expected\n2,bye,moon\n")
    for dry_run in ([], ["--dry-run"]):
        code, out, err = cli(emulator, tmp_path, capsys, path, *dry_run)
        assert (code, out, err) == (1, "", f"bt-sync: error: all.csv row 2: {REPEATED}\n")
        assert nothing_created(emulator)

    rejects = tmp_path / "rejects.jsonl"
    code, out, err = cli(emulator, tmp_path, capsys, path, "--on-error", "skip", "--rejects", str(rejects))
    assert (code, err) == (0, "")
    assert "1 row rejected" in out
    assert {key: (row["input"], row["expected"]) for key, row in stored(emulator).items()} == {
        "1": ("hello", "world"),
        "2": ("bye", "moon"),
    }
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert (rejected["row"], rejected["reason"]) == (2, REPEATED)
    assert rejected["values"] == {"id": "id", "input": "input", "expected": "expected"}


@pytest.mark.parametrize("header", ["\ufeffid,input,\n", '\ufeff"id","input",\r\n'], ids=["bare", "quoted"])
def test_a_repeated_header_is_found_past_the_first_chunk_with_a_byte_order_mark_and_compressed(
    tmp_path: Path, push: Any, header: str
) -> None:
    # `cat` of two spreadsheet exports: the second file's header keeps its byte order mark (and after it,
    # its quotes), and a column without a name (a trailing separator) is empty there as in the rows.
    rows = "".join(f"{n},q{n},\n" for n in range(3000))
    path = tmp_path / "all.csv.gz"
    path.write_bytes(gzip.compress(f"{header}{rows}{header}{rows}".encode()))
    with pytest.raises(PushError) as error:
        push(path)
    assert str(error.value) == f"all.csv.gz row 3001: {REPEATED}"


@pytest.mark.parametrize(
    "content",
    [
        "input\ninput\nq\n",
        "id,input,expected\n1,input,expected\nid,x,expected\n",
        "input,expected\ninput,\n",
        'id,input\n"id","input "\n',
    ],
    ids=["one column", "some columns", "an empty one", "spaces"],
)
def test_rows_holding_some_column_names_or_a_one_column_file_s_name_are_sent(
    emulator: Emulator, tmp_path: Path, push: Any, content: str
) -> None:
    path = tmp_path / "names.csv"
    path.write_text(content)
    summary = push(path)
    assert (summary.rows_sent, summary.rows_skipped) == (len(content.splitlines()) - 1, 0)


# 14. Rows sharing an id: the last one wins, and the summary says so ------------------------------------


def test_the_last_row_with_an_id_wins_and_the_duplicates_are_reported(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["id,input"] + [f"r{n},first {n}" for n in range(200)]
    lines[1 + 150] = "r3,second 3"  # row 151 repeats the id of row 4, three batches later
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = cli(emulator, tmp_path, capsys, path, "--batch-rows", "40", "--json")
    summary = orjson.loads(out)
    assert code == 0
    assert (summary["rows_read"], summary["rows_sent"], summary["rows_duplicate"]) == (200, 199, 1)
    assert err == (
        "bt-sync: warning: 1 row of dup.csv was not sent: a later row has the same id, "
        'and the last one wins (e.g. id "r3" on rows 4, 151)\n'
    )
    rows = stored(emulator)
    assert (len(rows), rows["r3"]["input"]) == (199, "second 3")
    assert emulator.stats.rows_inserted[summary["dataset_id"]] == 199


def test_jsonl_ids_1_and_quoted_1_are_one_id(emulator: Emulator, tmp_path: Path, push: Any) -> None:
    path = jsonl(tmp_path / "ids.jsonl", [{"id": 1, "input": "number"}, {"id": "1", "input": "text"}])
    summary = push(path)
    assert (summary.rows_sent, summary.rows_duplicate) == (1, 1)
    assert summary.warnings == [
        "1 row of ids.jsonl was not sent: a later row has the same id, and the last one wins "
        '(e.g. id "1" on rows 1, 2)'
    ]
    assert stored(emulator)["1"]["input"] == "text"


@pytest.mark.parametrize("validate_first", [True, False])
def test_a_refused_row_repeating_an_earlier_rows_id_says_what_became_of_the_earlier_row(
    emulator: Emulator, tmp_path: Path, push: Any, validate_first: bool
) -> None:
    rows = [
        {"id": "a", "input": "old a", "tags": []},  # its keys map a JSON file sent as it is checked
        {"id": "b", "input": "b"},
        {"id": "a", "input": "new a", "tags": 5},  # refused: the last row of "a"
        {"id": "c", "input": "c", "tags": 7},  # refused, the only row of "c"
    ]
    path = jsonl(tmp_path / "d.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects, validate_first=validate_first)
    assert [orjson.loads(line)["row"] for line in rejects.read_text().splitlines()] == [3, 4]
    said = '(e.g. id "a", row 3); mend the refused rows and push the file again'
    if validate_first:
        # The file's last row of "a" is the refused one: the older row it replaces is not sent either.
        assert (summary.rows_sent, summary.rows_skipped, summary.rows_duplicate) == (1, 2, 1)
        assert {key: row["input"] for key, row in stored(emulator).items()} == {"b": "b"}
        fate = "which were left out for them: no row of those ids was stored"
    else:
        # Sent before the refused row was read: the dataset keeps it, and the push says so.
        assert (summary.rows_sent, summary.rows_skipped) == (2, 2)
        assert {key: row["input"] for key, row in stored(emulator).items()} == {"a": "old a", "b": "b"}
        fate = "which were sent: the dataset holds those rows, not the refused ones"
    assert summary.warnings[-1] == (
        "1 row of d.jsonl that the checks refused (in the rejects file) had the same id as earlier rows, "
        f"{fate} {said}"
    )


def test_a_row_that_cannot_be_read_is_said_to_leave_the_earlier_row_of_its_id_sent(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # A line that does not parse has no id to trust: the earlier row of "a" is sent, which a refused row
    # that can be read would have left out, and nothing said so.
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "a", "input": "old a"}\n{"id": "b", "input": "b"}\n{"id": "a", "input": NaN}\n')
    summary = push(path, on_error="skip", rejects=tmp_path / "rejects.jsonl", id_column="id")
    assert {key: row["input"] for key, row in stored(emulator).items()} == {"a": "old a", "b": "b"}
    assert summary.warnings[-1] == (
        "1 row of d.jsonl could not be read (in the rejects file; e.g. row 3), so its id is unknown: if "
        "one repeats an earlier row's id, that earlier row was sent, where a refused row that can be read "
        "leaves out the earlier rows of its id"
    )


def test_json_lines_sent_as_written_keep_their_row_across_blank_lines_crlf_and_spaces(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b"\n"
        b'{"id": "a", "input": {"n": 1.50}, "tags": []}\r\n'
        b"   \n"
        b'  {"expected": "caf\\u00e9", "metadata": {"k": [1e2]},  "id": "b"}  \r\n'
        b'{"id": 7, "input": "seven", "expected": null}\n'
        b'{"input": "c", "id": "c", "tags": ["x"]}'
    )
    summary = push(path)
    assert (summary.rows_read, summary.rows_sent) == (4, 4)
    rows = {
        key: {
            k: v for k, v in row.items() if k in {"input", "expected", "metadata", "tags"} and v is not None
        }
        for key, row in stored(emulator).items()
    }
    assert rows == {
        "a": {"input": {"n": 1.5}, "tags": []},
        "b": {"expected": "café", "metadata": {"k": [100.0]}},
        "7": {"input": "seven"},
        "c": {"input": "c", "tags": ["x"]},
    }


def test_a_dry_run_counts_duplicates_and_the_batches_without_them(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "d.jsonl", [{"id": n % 30, "input": n} for n in range(90)])
    options = PushOptions(file=path, project=PROJECT, dataset=DATASET, batch_rows=20, dry_run=True)
    summary = push_file(None, options, NullProgress())
    assert (summary.rows_read, summary.rows_duplicate, summary.batches) == (90, 60, 2)
    # Nothing is sent in a dry run: "were not sent" read as what had happened.
    assert summary.warnings[0].startswith("60 rows of d.jsonl would not be sent: a later row has the same id")


def test_a_resumed_push_of_a_file_with_duplicates_stores_the_last_rows(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    from connector.emulator import FaultRule
    from connector.errors import ServerUnavailable

    path = jsonl(tmp_path / "d.jsonl", [{"id": n % 50, "input": n} for n in range(120)])
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=503, times=None, after=1))
    with pytest.raises(ServerUnavailable):
        push(path, batch_rows=10, concurrency=1)
    emulator.faults.clear()
    summary = push(path, batch_rows=10, concurrency=1)
    assert (summary.rows_resumed + summary.rows_sent, summary.rows_duplicate) == (50, 70)
    assert {int(i): row["input"] for i, row in stored(emulator).items()} == {n % 50: n for n in range(120)}


# 15. Arrow types: nanoseconds and every other type with a JSON form -----------------------------------


def test_nanosecond_times_and_other_arrow_types_arrive_exactly(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    ns = 1_700_000_000_123_456_789
    whole_us = 1_700_000_000_123_456_000
    key = uuid.UUID(int=7)
    table = pa.table(
        {
            "id": ["a", "b"],
            "naive": pa.array([ns, -1], pa.timestamp("ns")),
            "zoned": pa.array([ns, whole_us], pa.timestamp("ns", "Europe/Paris")),
            "micro": pa.array([whole_us // 1000] * 2, pa.timestamp("us", "Europe/Paris")),
            "clock": pa.array([45_296_000_000_001, 0], pa.time64("ns")),
            "many": pa.array([[ns, None], None], pa.list_(pa.timestamp("ns"))),
            "nested": pa.array(
                [{"at": ns, "n": 1}, {"at": None, "n": 2}],
                pa.struct([("at", pa.timestamp("ns")), ("n", pa.int8())]),
            ),
            "by_name": pa.array([[("x", ns)], []], pa.map_(pa.string(), pa.timestamp("ns", "UTC"))),
            "price": pa.array([Decimal("12.30"), Decimal("-0.001")], pa.decimal128(10, 3)),
            "key": pa.array([key.bytes, key.bytes], pa.uuid()),
            # A HALF too: 0.1 was sent as 0.0999755859375 (Arrow's text for it is exact as well).
            "half": pa.array([1.5, None], pa.float16()),
            "halves": pa.array([[0.1, None, 0.3, 65504.0], None], pa.list_(pa.float16())),
            # Python widens a FLOAT to its exact double: 0.1 was sent as 0.10000000149011612.
            "single": pa.array([0.1, None], pa.float32()),
            "singles": pa.array([[0.3, None, 1e20], None], pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, tmp_path / "types.parquet")
    columns = [name for name in table.column_names if name != "id"]
    push(tmp_path / "types.parquet", input=tuple(columns))
    rows = stored(emulator)
    assert rows["a"]["input"] == {
        "naive": "2023-11-14T22:13:20.123456789",
        "zoned": "2023-11-14T23:13:20.123456789+01:00",
        "micro": "2023-11-14T23:13:20.123456+01:00",
        "clock": "12:34:56.000000001",
        "many": ["2023-11-14T22:13:20.123456789", None],
        "nested": {"at": "2023-11-14T22:13:20.123456789", "n": 1},
        "by_name": {"x": "2023-11-14T22:13:20.123456789+00:00"},
        "price": 12.3,
        "key": str(key),
        "half": 1.5,
        "halves": [0.1, None, 0.3, 65500.0],  # the shortest decimal that is 65504's HALF
        "single": 0.1,
        "singles": [0.3, None, 1e20],
    }
    b = rows["b"]["input"]
    # Whole microseconds read the same from a nanosecond column as from a microsecond one.
    assert b["zoned"] == b["micro"] == rows["a"]["input"]["micro"]
    assert (b["naive"], b["clock"], b["nested"], b["by_name"], b["price"]) == (
        "1969-12-31T23:59:59.999999999",
        "00:00:00",
        {"at": None, "n": 2},
        {},
        -0.001,
    )
    assert datetime.fromisoformat(b["micro"]).astimezone(UTC).year == 2023


def test_a_zone_offset_of_seconds_is_sent_as_the_same_moment_in_utc(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # Local mean times before standard time: orjson writes an offset to the minute (-00:44:30 as -00:45),
    # which moved Monrovia's moment 30 s and Amsterdam's 28 s, without a word.
    moments = [
        datetime(1971, 1, 1, tzinfo=UTC),
        datetime(1930, 1, 1, tzinfo=UTC),
        datetime(2023, 6, 1, tzinfo=UTC),
    ]
    zones = {"monrovia": "Africa/Monrovia", "amsterdam": "Europe/Amsterdam"}
    columns: dict[str, Any] = {"id": ["a", "b", "c"]}
    for name, zone in zones.items():
        columns[f"{name}_us"] = pa.array(moments, pa.timestamp("us", zone))
        columns[f"{name}_ns"] = pa.array(moments, pa.timestamp("ns", zone))
    columns["nested"] = pa.array([[moment] for moment in moments], pa.list_(pa.timestamp("us", "Asia/Tokyo")))
    pq.write_table(pa.table(columns), tmp_path / "zones.parquet")
    push(tmp_path / "zones.parquet", input=tuple(name for name in columns if name != "id"))
    rows = stored(emulator)
    for row_id, moment in zip(("a", "b", "c"), moments, strict=True):
        sent = rows[row_id]["input"]
        for name, text in sent.items():
            shown = text[0] if name == "nested" else text
            assert datetime.fromisoformat(shown) == moment, (row_id, name, shown)
    # A zone no time zone database knows, which pyarrow writes: one line naming it (a traceback).
    for unit in ("us", "ns"):
        unknown = pa.table({"id": ["a"], "input": pa.array(moments[:1], pa.timestamp(unit, "Mars/Olympus"))})
        pq.write_table(unknown, tmp_path / "mars.parquet")
        with pytest.raises(PushError) as caught:
            push(tmp_path / "mars.parquet")
        assert str(caught.value) == (
            f'mars.parquet, column "input": type timestamp[{unit}, tz=Mars/Olympus] cannot be sent as JSON: '
            "its time zone 'Mars/Olympus' is none this machine knows; cast it to UTC"
        )
    # A whole-minute offset is kept as the zone's, as before.
    assert rows["c"]["input"]["amsterdam_us"] == "2023-06-01T02:00:00+02:00"
    assert rows["c"]["input"]["monrovia_ns"] == "2023-06-01T00:00:00+00:00"
    assert rows["b"]["input"]["amsterdam_ns"] == "1930-01-01T00:00:00+00:00"


@pytest.mark.parametrize("unit", ["s", "us"])
def test_a_moment_beyond_the_years_of_its_zone_s_local_time_is_sent_in_utc(
    emulator: Emulator, tmp_path: Path, push: Any, unit: str
) -> None:
    # "Valid until 9999-12-31T23:59:59Z" in a column of Tokyo's zone is the year 10000 there: the row was
    # refused as "a date or time outside the years 1 to 9999".
    late, early, usual = (
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, 2, tzinfo=UTC),
        datetime(2024, 5, 1, tzinfo=UTC),
    )
    moments = [late, early, usual]
    tokyo = pa.timestamp(unit, "Asia/Tokyo")
    columns = {
        "id": ["late", "early", "usual"],
        "tokyo": pa.array(moments, tokyo),
        "new_york": pa.array(moments, pa.timestamp(unit, "America/New_York")),
        "monrovia": pa.array(moments, pa.timestamp(unit, "Africa/Monrovia")),
        # And within a list, a struct or a map.
        "listed": pa.array([[moment] for moment in moments], pa.list_(tokyo)),
        "nested": pa.array([{"at": moment} for moment in moments], pa.struct([("at", tokyo)])),
        "mapped": pa.array([[("at", moment)] for moment in moments], pa.map_(pa.string(), tokyo)),
    }
    pq.write_table(pa.table(columns), tmp_path / "edges.parquet")
    summary = push(tmp_path / "edges.parquet", input=tuple(name for name in columns if name != "id"))
    assert (summary.rows_sent, summary.rows_skipped) == (3, 0)
    rows = stored(emulator)
    for row_id, moment in zip(columns["id"], moments, strict=True):
        sent = dict(rows[row_id]["input"])
        sent |= {"listed": sent["listed"][0], "nested": sent["nested"]["at"], "mapped": sent["mapped"]["at"]}
        for name, text in sent.items():
            assert datetime.fromisoformat(text) == moment, (row_id, name, text)
    # Only the moments the zone's local time cannot hold are in UTC; the others keep their zone.
    assert rows["late"]["input"]["tokyo"] == "9999-12-31T23:59:59+00:00"
    assert rows["late"]["input"]["new_york"] == "9999-12-31T18:59:59-05:00"
    assert rows["early"]["input"]["new_york"] == "0001-01-01T02:00:00+00:00"
    assert rows["usual"]["input"]["tokyo"] == "2024-05-01T09:00:00+09:00"


def test_json_columns_of_a_parquet_file_arrive_as_the_values_they_hold(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # Parquet's JSON type: what DuckDB's COPY writes, and bt-sync's own tables hold (`input`, `expected`).
    held = {"r1": '"hello"', "r2": "42", "r3": "true", "r4": "null", "r5": '{"a": [1, "x"]}'}
    # Text that looks like JSON, held as text: `--parse-json` (the default) leaves a JSON column's text be.
    held["r6"] = '"{\\"b\\": 2}"'
    values = ", ".join(f"('{key}', '{text}'::JSON)" for key, text in held.items())
    path = tmp_path / "json.parquet"
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {values}) AS v(id, input)) TO '{path}' (FORMAT parquet)")
    assert pq.read_schema(path).field("input").type.extension_name == "arrow.json"
    push(path, input=("input",))
    landed = {key: row.get("input") for key, row in stored(emulator).items()}
    assert landed == {
        "r1": "hello",
        "r2": 42,
        "r3": True,
        "r4": None,
        "r5": {"a": [1, "x"]},
        "r6": '{"b": 2}',
    }


@pytest.mark.parametrize("file_format", ["jsonl", "json"])
def test_a_json_file_s_strings_arrive_as_strings_even_when_they_look_like_json(
    emulator: Emulator, tmp_path: Path, push: Any, file_format: str
) -> None:
    # A dataset's records exported by `bt-sync sql --format json` and pushed back: its JSON-looking text
    # came back as objects and arrays, and a citation as "invalid JSON", failing the push.
    rows = [
        {"id": "s1", "input": '{"a": 1}', "expected": "[1, 2]", "metadata": {"note": "[draft]"}},
        {"id": "s2", "input": "[1] Smith et al.", "expected": {"a": 1}},
        {"id": "s3", "input": "[citation needed] is a tag", "tags": ["x"]},
    ]
    path = tmp_path / f"rows.{file_format}"
    if file_format == "json":
        path.write_bytes(orjson.dumps(rows))
    else:
        jsonl(path, rows)
    summary = push(path)
    assert (summary.rows_sent, summary.rows_skipped) == (3, 0)
    landed = {
        key: {field: row[field] for field in ("input", "expected", "metadata", "tags") if row.get(field)}
        for key, row in stored(emulator).items()
    }
    assert landed == {
        "s1": {"input": '{"a": 1}', "expected": "[1, 2]", "metadata": {"note": "[draft]"}},
        "s2": {"input": "[1] Smith et al.", "expected": {"a": 1}},
        "s3": {"input": "[citation needed] is a tag", "tags": ["x"]},
    }


def test_a_type_without_a_json_form_is_one_line_naming_the_column(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pq.write_table(
        pa.table({"input": ["q"], "wait": pa.array([5], pa.duration("s"))}), tmp_path / "d.parquet"
    )
    code, _, err = cli(emulator, tmp_path, capsys, tmp_path / "d.parquet", "--metadata", "wait")
    assert (code, err) == (
        1,
        'bt-sync: error: d.parquet, column "wait": type duration[s] cannot be sent as JSON: a duration has '
        "no single JSON form; cast it to an integer count of a unit, or to string\n",
    )
    assert nothing_created(emulator)


def test_values_of_columns_never_sent_refuse_no_row_and_no_file(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # Listed as not sent, so never read: a binary or duration column, a NaN, bytes that are not UTF-8.
    table = pa.table(
        {
            "id": ["a", "b"],
            "input": ["q1", "q2"],
            "raw": pa.array([b"\x00", b"\xff"], pa.binary()),
            "wait": pa.array([5, 6], pa.duration("s")),
            "score": [float("nan"), 1.0],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_bytes(b"id,input,comment\nc,q3,caf\xe9\nd,q4,fine\n")
    for name, unsent in (("d.parquet", ["raw", "wait", "score"]), ("d.csv", ["comment"])):
        summary = push(tmp_path / name)
        assert (summary.rows_sent, summary.rows_skipped, summary.unmapped_columns) == (2, 0, unsent)
    assert {key: row["input"] for key, row in stored(emulator).items()} == {
        "a": "q1", "b": "q2", "c": "q3", "d": "q4"
    }  # fmt: skip


@pytest.mark.parametrize(("separator", "flag"), [(";", "';'"), ("\t", "'\\t'")])
def test_a_csv_file_separated_otherwise_is_refused_naming_the_flag_and_pushed_with_it(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], separator: str, flag: str
) -> None:
    data = tmp_path / "export.csv"
    # A spreadsheet's export: the separator, a value quoted because it holds one, and a comma as text.
    data.write_text(f'id{separator}input\nr1{separator}"a{separator}b"\nr2{separator}1,5\n')
    hint = f"its header looks separated by {flag}: pass --delimiter {flag}"
    header = f'"id{separator}input"'.replace("\t", "\\x09")
    code, out, err = cli(emulator, tmp_path, capsys, data)
    assert (code, out) == (1, "")
    assert err == (
        "bt-sync: error: export.csv: no column maps to input, expected or metadata; name them with "
        f"--input/--expected/--metadata (the file has columns: {header}; {hint})\n"
    )
    code, _, err = cli(emulator, tmp_path, capsys, data, "--input", "input")
    missing = 'bt-sync: error: export.csv: no column "input" (from --input)'
    assert (code, err) == (1, f"{missing}; the file has columns: {header}; {hint}\n")
    assert nothing_created(emulator)
    code, out, err = cli(emulator, tmp_path, capsys, data, "--delimiter", flag.strip("'"))
    assert (code, err) == (0, ""), err
    assert out.startswith("pushed 2 rows of export.csv")
    assert {row_id: row["input"] for row_id, row in stored(emulator).items()} == {
        "r1": f"a{separator}b",
        "r2": "1,5",
    }


def test_a_spreadsheet_s_line_naming_the_separator_is_told_to_go_with_or_without_the_flag(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "excel.csv"
    data.write_text("sep=;\nid;input\nr1;hello\n")
    # Following the hint to pass `--delimiter ';'` led to columns "sep=" and "", and no hint at all.
    for flags, told in (
        ((), "delete that line and pass --delimiter ';'"),
        (("--delimiter", ";"), "delete that line)"),
    ):
        code, out, err = cli(emulator, tmp_path, capsys, data, *flags)
        assert (code, out) == (1, "")
        assert f"its first line, 'sep=;', is a spreadsheet's naming its separator: {told}" in err, err
    data.write_text("id;input\nr1;hello\n")
    code, _, err = cli(emulator, tmp_path, capsys, data, "--delimiter", ";")
    assert (code, err) == (0, ""), err
    assert {row_id: row["input"] for row_id, row in stored(emulator).items()} == {"r1": "hello"}


def test_only_a_csv_file_read_with_another_separator_is_told_which_to_pass(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commas = tmp_path / "commas.csv"
    commas.write_text("id,input\nr1,q\n")
    code, _, err = cli(emulator, tmp_path, capsys, commas, "--delimiter", ";")
    hint = "its header looks separated by ',': pass --delimiter ','"
    assert (code, err.endswith(f'(the file has columns: "id,input"; {hint})\n')) == (1, True), err
    # A JSON key holding a `;` is no header: the flag, which applies to CSV only, is not named.
    keyed = tmp_path / "keyed.jsonl"
    keyed.write_text('{"q;a": "x"}\n')
    code, _, err = cli(emulator, tmp_path, capsys, keyed)
    assert (code, err.endswith('(the file has columns: "q;a")\n')) == (1, True), err
    assert nothing_created(emulator)


@pytest.mark.parametrize("name", ["scores.tsv", "scores.tsv.gz"])
def test_a_tsv_file_is_read_separated_by_tabs(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text = b"id\tinput\texpected\nr1\ta, b\t1;2\n"
    data = tmp_path / name
    data.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    code, out, err = cli(emulator, tmp_path, capsys, data)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"pushed 1 row of {name}")
    (row,) = stored(emulator).values()
    assert (row["id"], row["input"], row["expected"]) == ("r1", "a, b", "1;2")


def test_a_delimiter_is_refused_for_a_file_that_is_not_csv_or_when_it_is_not_one_ascii_character(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = jsonl(tmp_path / "rows.jsonl", [{"id": "r1", "input": "q"}])
    code, _, err = cli(emulator, tmp_path, capsys, rows, "--delimiter", ";")
    assert (code, err) == (
        1,
        "bt-sync: error: rows.jsonl is JSON Lines, not CSV: --delimiter applies to CSV files only\n",
    )
    data = tmp_path / "data.csv"
    data.write_text("id,input\nr1,q\n")
    # A character of several bytes in UTF-8 too: the CSV reader splits bytes (it raised, uncaught).
    # `\n` typed (a backslash, then n) is quoted as typed: a repr doubled its backslash.
    for given in (";;", '"', "", "§", "€", "\\n"):
        code, _, err = cli(emulator, tmp_path, capsys, data, "--delimiter", given)
        reason = (
            f"must be one ASCII character other than a quote or a line break (\\t for a tab), not '{given}'"
        )
        assert (code, err) == (2, f"bt-sync: error: invalid setting: --delimiter: {reason}\n"), given
    assert nothing_created(emulator)


def test_a_map_repeating_a_key_is_a_bad_row_not_a_lost_entry(tmp_path: Path, push: Any) -> None:
    maps = pa.array([[("k", 1)], [("k", 1), ("k", 2)]], pa.map_(pa.string(), pa.int64()))
    pq.write_table(pa.table({"input": maps}), tmp_path / "m.parquet")
    rejects = tmp_path / "rejects.jsonl"
    summary = push(tmp_path / "m.parquet", on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert (rejected["row"], rejected["column"]) == (2, "input")
    assert rejected["reason"].startswith("a map holds the same key twice")
    assert rejected["values"] == {"input": "[('k', 1), ('k', 2)]"}


def test_a_rejected_struct_is_copied_to_the_rejects_file_as_the_object_it_is(
    tmp_path: Path, push: Any
) -> None:
    kind = pa.struct([("score", pa.float64()), ("label", pa.string())])
    scored = pa.array([{"score": 0.5, "label": "ok"}, {"score": float("nan"), "label": "é"}], kind)
    table = pa.table({"id": ["a", "b"], "input": ["q1", "q2"], "metadata": scored})
    pq.write_table(table, tmp_path / "s.parquet")
    rejects = tmp_path / "rejects.jsonl"
    summary = push(tmp_path / "s.parquet", on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert (rejected["row"], rejected["column"]) == (2, "metadata")
    # Where pyarrow shows a struct as a list of pairs: [('score', nan), ('label', 'é')].
    assert rejected["values"] == {"id": "b", "input": "q2", "metadata": '{"score": NaN, "label": "é"}'}


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        (pa.list_(pa.float64()), [float("inf"), 1.0], "[Infinity, 1.0]"),
        (pa.large_list(pa.struct([("s", pa.float64())])), [{"s": float("nan")}], '[{"s": NaN}]'),
        (pa.list_(pa.float32(), 2), [float("-inf"), 0.5], "[-Infinity, 0.5]"),
    ],
)
def test_a_rejected_list_is_copied_to_the_rejects_file_as_the_array_it_is(
    tmp_path: Path, push: Any, kind: pa.DataType, value: list[Any], shown: str
) -> None:
    # Python's forms were written: `[inf, 1.0]`, `[{'s': nan}]`.
    column = pa.array([None, value], kind)
    pq.write_table(
        pa.table({"id": ["a", "b"], "input": ["q1", "q2"], "expected": column}), tmp_path / "l.parquet"
    )
    rejects = tmp_path / "rejects.jsonl"
    summary = push(tmp_path / "l.parquet", on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert (rejected["row"], rejected["column"]) == (2, "expected")
    assert rejected["values"] == {"id": "b", "input": "q2", "expected": shown}


def test_a_map_deep_in_a_column_is_an_object_and_one_repeating_a_key_a_bad_row(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # Only a column holding a map is converted map-aware: one nested in a struct's list is still found.
    nested = pa.struct([("m", pa.list_(pa.map_(pa.string(), pa.int64())))])
    values = pa.array([{"m": [[("k", 1)]]}, {"m": [[("k", 1), ("k", 2)]]}], nested)
    pq.write_table(pa.table({"id": ["a", "b"], "input": values}), tmp_path / "m.parquet")
    rejects = tmp_path / "rejects.jsonl"
    summary = push(tmp_path / "m.parquet", on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    assert {key: row["input"] for key, row in stored(emulator).items()} == {"a": {"m": [{"k": 1}]}}
    (rejected,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert (rejected["row"], rejected["column"]) == (2, "input")


def test_a_file_whose_every_row_is_rejected_creates_nothing(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    pq.write_table(
        pa.table({"id": ["a", "b"], "input": [float("nan"), float("inf")]}), tmp_path / "f.parquet"
    )
    summary = push(tmp_path / "f.parquet", on_error="skip", rejects=tmp_path / "rejects.jsonl")
    assert (summary.rows_read, summary.rows_skipped, summary.dataset_id) == (2, 2, None)
    assert nothing_created(emulator)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("nested", [False, True], ids=["column", "in a list"])
def test_a_float_json_cannot_hold_is_a_bad_row_not_a_null(
    emulator: Emulator, tmp_path: Path, push: Any, value: float, nested: bool
) -> None:
    values = [[1.5], [value]] if nested else [1.5, value]
    pq.write_table(pa.table({"id": ["a", "b"], "input": values}), tmp_path / "f.parquet")
    with pytest.raises(PushError) as error:
        push(tmp_path / "f.parquet")
    assert str(error.value) == (
        f'f.parquet row 2, column "input": the value has no JSON form ({value} is not a number JSON can hold)'
    )
    assert nothing_created(emulator)
    summary = push(tmp_path / "f.parquet", on_error="skip", rejects=tmp_path / "rejects.jsonl")
    assert (summary.rows_sent, summary.rows_skipped) == (1, 1)
    assert stored(emulator)["a"]["input"] == values[0]
    # The rejected row keeps its id, and the value as text, so a user can find and mend it: a list as the
    # JSON array it is, NaN and infinities as JavaScript writes them.
    shown = f"[{json.dumps(value)}]" if nested else str(value)
    assert orjson.loads((tmp_path / "rejects.jsonl").read_bytes())["values"] == {"id": "b", "input": shown}


def test_times_of_every_unit_arrive_as_written_the_end_of_the_day_too(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # Parquet's times as DuckDB writes them: 24:00:00 is the end of the day, not midnight.
    day = 86_400
    columns = {
        "id": ["a", "b"],
        "input": pa.array([day, 1], pa.time32("s")),
        "expected": pa.array([day * 10**9, 1], pa.time64("ns")),
        "metadata": pa.array([{"at": day * 1000}, {"at": 1}], pa.struct([("at", pa.time32("ms"))])),
    }
    pq.write_table(pa.table(columns), tmp_path / "t.parquet")
    assert push(tmp_path / "t.parquet").rows_sent == 2
    assert {
        key: (row["input"], row["expected"], row["metadata"]) for key, row in stored(emulator).items()
    } == {
        "a": ("24:00:00", "24:00:00", {"at": "24:00:00"}),
        "b": ("00:00:01", "00:00:00.000000001", {"at": "00:00:00.001000"}),
    }
    # Past the end of the day, or before its start, a time is a bad row, shown as its count.
    pq.write_table(pa.table({"id": ["c"], "input": pa.array([-5], pa.time32("ms"))}), tmp_path / "b.parquet")
    summary = push(tmp_path / "b.parquet", on_error="skip", rejects=tmp_path / "rejects.jsonl")
    assert (summary.rows_sent, summary.rows_skipped) == (0, 1)
    rejected = orjson.loads((tmp_path / "rejects.jsonl").read_bytes())
    assert (rejected["values"], rejected["reason"]) == (
        {"id": "c", "input": "-5 ms"},
        "the value has no JSON form (-5 ms is not a time of day)",
    )


def test_a_json_file_s_number_written_with_an_exponent_is_no_id(tmp_path: Path, push: Any) -> None:
    # As in a JSON Lines file: `10E0` is a number, not an integer, whatever its value.
    (tmp_path / "ids.json").write_text('[{"id": 10E0, "input": 1}, {"id": -0E0, "input": 1}]')
    with pytest.raises(PushError, match='row 1, column "id": an id must be text or an integer'):
        push(tmp_path / "ids.json", dry_run=True)


def test_a_json_file_s_numbers_beyond_a_double_are_bad_rows_and_its_big_integers_round_as_json_lines(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": "a", "input": {"n": 1}}, {"id": "b", "input": {"deep": [-1e400]}}]')
    # Checked before anything is sent: the API's reader would refuse the row after the rows before it.
    with pytest.raises(PushError) as error:
        push(path)
    assert str(error.value) == (
        "d.json row 2: the number -1E+400 is beyond a double's range, which JSON readers (the API's too) "
        "cannot hold"
    )
    assert nothing_created(emulator)
    path.write_text(f'[{{"id": "a", "input": {{"n": 1{"0" * 320}}}}}]')  # an integer no double holds
    with pytest.raises(PushError) as error:
        push(path)
    assert str(error.value) == (
        "d.json row 1: the number 100000000000… (321 digits) is beyond a double's range, which JSON "
        "readers (the API's too) cannot hold"
    )
    big = 123456789012345678901234567890
    for name in ("big.json", "big.jsonl"):
        (tmp_path / name).write_text(f'{{"id": "{name}", "input": {{"n": {big}}}, "x": 1}}\n')
        push(tmp_path / name)
    rows = stored(emulator)
    assert rows["big.json"]["input"] == rows["big.jsonl"]["input"] == {"n": float(big)}


# 16. Files whose name says something else than their bytes ---------------------------------------------


# Each format's plain content, and how many rows it holds.
PLAIN = {
    "csv": 'id,input,expected\n1,"{""q"": 1}",a\n2,"two\nlines",\n3,café,c\n'.encode(),
    "jsonl": b'{"id": "1", "input": {"q": 1}, "expected": "a"}\n{"id": "2", "metadata": {"k": [1, 2]}}\n',
}
ROWS = {"csv": 3, "jsonl": 2}


def compress(codec: str | None, content: bytes) -> bytes:
    if codec in ("gzip", "bz2"):
        return gzip.compress(content) if codec == "gzip" else bz2.compress(content)
    if codec is None:
        return content
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, codec) as stream:
        stream.write(content)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("gz.csv", "gzip"),
        ("bz.jsonl", "bz2"),
        ("zstd.csv", "zstd"),
        ("lz4.csv", "lz4"),
        ("lz4.jsonl", "lz4"),
        ("named.jsonl.lz4", "lz4"),
        ("plain.csv.gz", None),
    ],
)
def test_compressed_files_are_read_whatever_their_name(
    emulator: Emulator, tmp_path: Path, push: Any, name: str, codec: str | None
) -> None:
    kind = "csv" if ".csv" in name else "jsonl"
    content = PLAIN[kind]
    (tmp_path / "plain").mkdir()
    plain = tmp_path / "plain" / name.removesuffix(".gz").removesuffix(".lz4")
    plain.write_bytes(content)
    (tmp_path / name).write_bytes(compress(codec, content))
    push(plain, dataset="plain")
    push(tmp_path / name)

    def fields(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        return {i: (row.get("input"), row.get("expected"), row.get("metadata")) for i, row in rows.items()}

    assert fields(stored(emulator)) == fields(stored(emulator, "plain"))
    assert len(stored(emulator)) == ROWS[kind]


def test_a_parquet_file_named_csv_is_read_as_parquet(emulator: Emulator, tmp_path: Path, push: Any) -> None:
    pq.write_table(pa.table({"id": ["p"], "input": [{"q": 1}]}), tmp_path / "export.csv")
    assert push(tmp_path / "export.csv").rows_sent == 1
    assert stored(emulator)["p"]["input"] == {"q": 1}


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        (
            "d.parquet.gz",
            "parquet+gzip",
            (),
            "d.parquet.gz is a gzip-compressed Parquet file; decompress it first",
        ),
        (
            "d.csv",
            "parquet",
            ("--format", "jsonl"),
            "d.csv is a Parquet file, not JSON Lines; pass --format parquet",
        ),
        # A download saved as sent, compressed: "a binary file or UTF-16 text (it holds NUL bytes)".
        (
            "d.csv.gz",
            gzip.compress(gzip.compress(b"id,input\n1,q\n", mtime=0), mtime=0),
            (),
            "d.csv.gz is compressed twice: decompressed (gzip), it is gzip-compressed again; decompress it "
            "once, then push that",
        ),
        (
            "d.parquet",
            b"id,input\n1,q\n",
            (),
            "d.parquet is not a Parquet file: it is text; pass --format csv",
        ),
        (
            "d.parquet",
            gzip.compress(b"id,input\n", mtime=0),
            (),
            "d.parquet is not a Parquet file: it is gzip-compressed text",
        ),
        (
            "d.csv",
            b"PK\x03\x04\x14\x00\x06\x00",
            (),
            "d.csv is a ZIP archive (an .xlsx workbook?), not UTF-8 CSV",
        ),
        ("d.csv", "input\nq\n".encode("utf-16"), (), "d.csv is UTF-16 text, not UTF-8 CSV text"),
        # Compressions bt-sync does not read: "a binary file or UTF-16 text", it said.
        (
            "d.csv.lz4",
            b"\x02\x21\x4c\x18\x0d\x00\x00\x00\xd0id,input\na,1\n",
            (),
            "d.csv.lz4 is LZ4 in its legacy format (`lz4 -l`; bt-sync reads gzip, bzip2, zstd, lz4 in its "
            "default one), not UTF-8 CSV text",
        ),
        (
            "d.jsonl.xz",
            lzma.compress(b'{"input": 1}\n'),
            (),
            "d.jsonl.xz: cannot tell the format from the extension",
        ),
        (
            "d.jsonl",
            lzma.compress(b'{"input": 1}\n'),
            (),
            "d.jsonl is xz-compressed (bt-sync reads gzip, bzip2, zstd and lz4), not UTF-8 JSON Lines text",
        ),
        (
            "d.jsonl",
            b'{"a"\x00\x01\xff\x1b[31m',
            (),
            "d.jsonl is a binary file, or UTF-16 or UTF-32 text (it holds NUL bytes)",
        ),
        # UTF-16 without its byte order mark: a NUL in every other byte.
        ("d.csv", "id,input\nq,1\n".encode("utf-16-le"), (), "d.csv is a binary file, or UTF-16 or UTF-32"),
        # UTF-32's mark was read as UTF-16's, or not at all (big-endian).
        ("d.csv", "id,input\nq,1\n".encode("utf-32"), (), "d.csv is UTF-32 text, not UTF-8 CSV text"),
        (
            "d.jsonl",
            '{"input": 1}\n'.encode("utf-32-be"),
            (),
            "d.jsonl is a binary file, or UTF-16 or UTF-32",
        ),
        (
            "d.jsonl",
            codecs.BOM_UTF32_BE + '{"input": 1}\n'.encode("utf-32-be"),
            (),
            "d.jsonl is UTF-32 text, not UTF-8 JSON Lines text",
        ),
        # Cyrillic so ("вход", "мир"): UTF-8 byte by byte, NULs by its ASCII only; its columns were blamed.
        (
            "d.csv",
            "\u0432\u0445\u043e\u0434\n\u043c\u0438\u0440\n".encode("utf-16-be"),
            (),
            "d.csv is a binary file, or UTF-16 or UTF-32",
        ),
    ],
)
def test_a_mislabelled_file_says_what_it_is_in_one_clean_line(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | str,
    args: tuple[str, ...],
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        pq.write_table(pa.table({"input": ["q"]}), path)
        if content == "parquet+gzip":
            path.write_bytes(gzip.compress(path.read_bytes()))
    else:
        path.write_bytes(content)
    code, out, err = cli(emulator, tmp_path, capsys, path, *args)
    assert (code, out) == (1, "")
    assert err.startswith(f"bt-sync: error: {message}") and err.count("\n") == 1
    assert nothing_created(emulator)


@pytest.mark.parametrize("before", [0, 100_000])
@pytest.mark.parametrize("last", [b'"a\x00b"', b"a\x00"])
def test_a_nul_character_in_a_csv_value_is_sent_as_it_is_wherever_it_is(
    emulator: Emulator, tmp_path: Path, push: Any, before: int, last: bytes
) -> None:
    # As `bt-sync sql --format csv` writes an id holding U+0000: refused whole as "a binary file" when in
    # the file's first 64 KiB, sent when after them; one ending a line, by its line break, as UTF-16.
    path = tmp_path / "nul.csv"
    rows = b"".join(b"r%d,x\n" % n for n in range(before // 5))
    path.write_bytes(b"id,input\n" + rows + b"x\x00y," + last + b"\nz,q\n")
    summary = push(path, id_column="id")
    assert summary.rows_sent == before // 5 + 2
    assert stored(emulator)["x\x00y"]["input"] == last.strip(b'"').decode()


def test_control_bytes_from_a_file_are_escaped_in_messages(emulator: Emulator, tmp_path: Path) -> None:
    # A malformed row that is not UTF-8 either: pyarrow fails decoding it before calling our handler.
    path = tmp_path / "d.csv"
    path.write_bytes(b"input,expected\nq,a\nx,\xff\x1b[2J,z\n")
    # A real process: pytest would catch what pyarrow prints on its own ("Exception ignored ...").
    process = push_process(emulator, path, tmp_path / "state")
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (1, b"")
    assert err.startswith(b"bt-sync: error: d.csv: cannot read it (CSV parse error: Row #3: Expected 2 ")
    assert err.endswith(b"\\x1b[2J,z)\n") and err.count(b"\n") == 1
    assert not [byte for byte in err[:-1] if byte < 0x20]


# 17. JSON arrays, pretty-printed JSON, and files that are not JSON Lines -------------------------------


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'[{"input": 1}, {"input": 2}]\n', "it is a JSON array"),
        # One element per line: the last is a JSON object on its own, the rest are not.
        (b'[\n{"input": 1},\n{"input": 2}\n]\n', "it is a JSON array"),
        (
            b'{\n  "input": {"nested": 1},\n  "list": [\n    {"a": 1}\n  ]\n}\n',
            "invalid JSON (unexpected end of data at char 1)",
        ),
        (b'{\n  "input": 1\n}\n', "invalid JSON (unexpected end of data at char 1)"),
        (
            b'{"input": 1}\r{"input": 2}\r',
            "its lines end with a lone CR (\\r), and JSON Lines needs LF or CRLF",
        ),
        (b'"just text"\n', "it is text"),
    ],
)
def test_a_file_that_is_not_json_lines_says_so(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, detail: str
) -> None:
    (tmp_path / "d.jsonl").write_bytes(content)
    code, _, err = cli(emulator, tmp_path, capsys, tmp_path / "d.jsonl")
    assert (code, err) == (
        1,
        f"bt-sync: error: d.jsonl line 1 is not a JSON object: {detail}. JSON Lines holds one object per "
        "line; for a JSON array, or objects spread over several lines, pass --format json\n",
    )
    assert nothing_created(emulator)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (
            b'{"id": "a", "input": 1e400}\n',
            "invalid JSON (number is infinity when parsed as double at char 21)",
        ),
        (
            b'{"id": "a",, "input": 1}\n',
            "invalid JSON (unexpected character, expected a string key at char 11)",
        ),
    ],
)
def test_a_first_line_broken_within_itself_is_not_sent_to_another_format(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, detail: str
) -> None:
    (tmp_path / "d.jsonl").write_bytes(content)
    code, _, err = cli(emulator, tmp_path, capsys, tmp_path / "d.jsonl")
    # A bad row, as it would be on any line (`--on-error skip` sends it to the rejects file).
    assert (code, err) == (1, f"bt-sync: error: d.jsonl row 1: {detail}\n")
    assert nothing_created(emulator)


@pytest.mark.parametrize(
    ("content", "row", "detail"),
    [
        # Two files that begin with a byte order mark, joined with `cat`.
        (
            b'\xef\xbb\xbf{"id": "a", "input": 1}\n\xef\xbb\xbf{"id": "b", "input": 2}\n',
            2,
            "invalid JSON (UTF-8 byte order mark (BOM) is not supported at char 0): the line begins with a "
            "byte order mark, as a file's first line does: delete it",
        ),
        (
            b'{"id": "a", "input": 1}{"id": "b", "input": 2}',
            1,
            "invalid JSON (unexpected content after document at char 23): objects one after another on a "
            "line are no JSON Lines; for such a file pass --format json",
        ),
        # orjson counts characters, not bytes.
        (
            '{"id": "a", "input": "日本語"}{"id": "b", "input": 2}'.encode(),
            1,
            "invalid JSON (unexpected content after document at char 27): objects one after another on a "
            "line are no JSON Lines; for such a file pass --format json",
        ),
    ],
)
def test_a_line_broken_in_a_common_way_says_what_to_do(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    row: int,
    detail: str,
) -> None:
    # Only the parser's words: "invalid JSON (… at char 0)", for a row that holds a valid object.
    (tmp_path / "d.jsonl").write_bytes(content)
    code, _, err = cli(emulator, tmp_path, capsys, tmp_path / "d.jsonl", "--format", "jsonl")
    assert (code, err) == (1, f"bt-sync: error: d.jsonl row {row}: {detail}\n")
    assert nothing_created(emulator)


def test_a_bad_first_line_among_objects_is_a_bad_row_like_any_other(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], push: Any
) -> None:
    path = tmp_path / "half.jsonl"  # the second half of a file split in two, cut mid-object
    path.write_bytes(b'"input": "cut"}\n{"id": "b", "input": 1}\n{"id": "c", "input": 2}\n')
    code, _, err = cli(emulator, tmp_path, capsys, path, "--id-column", "id")
    assert (code, err) == (
        1,
        "bt-sync: error: half.jsonl row 1: invalid JSON (unexpected content after document at char 7)\n",
    )
    assert nothing_created(emulator)
    rejects = tmp_path / "rejects.jsonl"
    summary = push(path, id_column="id", on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped) == (2, 1)
    assert [orjson.loads(line)["row"] for line in rejects.read_text().splitlines()] == [1]
    assert sorted(stored(emulator)) == ["b", "c"]


@pytest.mark.parametrize(
    "content",
    [
        b'\xef\xbb\xbf[\n  {"id": "a", "input": 1.50, "expected": {"n": 12345678901234567890}},\n'
        b'  {"id": "b", "input": [1e2], "tags": ["t"]}\n]\n',
        b'{"id": "a",\n "input": 1.50, "expected": {"n": 12345678901234567890}}\r'
        b'{"id": "b", "input": [1e2], "tags": ["t"]}',
    ],
    ids=["array", "objects one after another"],
)
def test_json_files_are_streamed_rows(emulator: Emulator, tmp_path: Path, push: Any, content: bytes) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(gzip.compress(content))
    summary = push(path, id_column="id")
    assert (summary.rows_read, summary.rows_sent) == (2, 2)
    rows = stored(emulator)
    assert (rows["a"]["input"], rows["a"]["expected"], rows["b"]["input"], rows["b"]["tags"]) == (
        1.5,
        {"n": 12345678901234567890},
        [100.0],
        ["t"],
    )


def test_json_rows_that_are_not_objects_and_broken_json_are_reported(tmp_path: Path, push: Any) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"input": 1}, 2, {"input": 3}]')
    rejects = tmp_path / "rejects.jsonl"
    assert push(path, on_error="skip", rejects=rejects).rows_skipped == 1
    assert orjson.loads(rejects.read_bytes())["reason"] == "expected a JSON object, found a number"

    path.write_bytes(b'[{"input": 1}, {"input": }]')
    with pytest.raises(
        PushError, match=r'^d\.json near row 2: invalid JSON around "}]" \(parse error: unallowed token'
    ):
        push(path)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # yajl marks the place in bytes: text of more bytes than characters before it moved the snippet on.
        ('[{"id": "a", "name": "cafééé", "score": NaN}]', 'around "NaN}]" (lexical error: invalid char'),
        ('[{"id": "a", "name": "日本", "score": NaN}]', 'around "NaN}]" (lexical error: invalid char'),
        # yajl's excerpt cut inside an emoji came as bytes: no snippet, and the bytes' repr as the reason.
        ('[{"id": "a", "input": "' + "😀" * 12 + '" oops}]', 'around "oops}]" (lexical error: invalid char'),
    ],
)
def test_invalid_json_is_shown_where_it_is_after_text_of_many_bytes(
    tmp_path: Path, push: Any, text: str, said: str
) -> None:
    path = tmp_path / "wide.json"
    path.write_text(text)
    with pytest.raises(PushError, match=f"^wide\\.json near row 1: invalid JSON {re.escape(said)}"):
        push(path)


def test_invalid_json_in_a_json_file_stops_a_push_that_skips_bad_rows_showing_the_text(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    path = tmp_path / "scores.json"
    # As Python's `json.dump` writes a float NaN: not JSON, and the parser cannot tell where its row ends.
    path.write_text('[{"id": "a", "input": 1}, {"id": "b", "input": {"score": NaN}}, {"id": "c"}]')
    with pytest.raises(PushError) as raised:
        push(path, on_error="skip", rejects=tmp_path / "rejects.jsonl")
    assert str(raised.value) == (
        'scores.json near row 2: invalid JSON around "NaN}}, {"id": "c"}]" (lexical error: invalid char in '
        "json text.); a JSON file is not read past it, even with --on-error skip (where its row ends cannot "
        "be told): mend it, or write the rows as JSON Lines, where such a line is one bad row"
    )
    assert nothing_created(emulator)


# 18. Without an id column, an edited file leaves its old rows: say so ----------------------------------


def test_no_id_column_is_a_warning_and_a_summary_field(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("input,expected\nq,a\n")
    code, out, err = cli(emulator, tmp_path, capsys, path, "--json")
    assert code == 0
    assert err == (
        "bt-sync: warning: qa.csv has no id column, so each row's id is a hash of its content: "
        "a row edited since an earlier push is stored as a new row beside the old one "
        "(name an id column with --id-column)\n"
    )
    summary = orjson.loads(out)
    assert (summary["id_column"], summary["warnings"]) == (
        None,
        [err.removeprefix("bt-sync: warning: ")[:-1]],
    )

    path.write_text("id,input,expected\n1,q,a\n")
    code, out, err = cli(emulator, tmp_path, capsys, path, "--json")
    assert (code, err, orjson.loads(out)["id_column"]) == (0, "", "id")


def test_an_id_column_mapped_to_another_field_is_named_in_the_warning(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,input\nq1,q\n")
    code, _, err = cli(emulator, tmp_path, capsys, path, "--metadata", "id")
    assert code == 0
    assert err.startswith(
        "bt-sync: warning: qa.csv's \"id\" column is mapped to another field, so each row's id"
    )


def test_a_column_named_as_a_field_but_for_case_is_named_with_the_flag_mapping_it(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A spreadsheet's `ID`: "qa.csv has no id column", the rows' ids hashed, and an edited row pushed again
    # stored beside the old one.
    path = tmp_path / "qa.csv"
    path.write_text("ID,Input,Expected\n1,q,4\n")
    code, _, err = cli(emulator, tmp_path, capsys, path, "--input", "Input", "--expected", "Expected")
    assert (code, err) == (
        0,
        'bt-sync: warning: qa.csv has no id column ("ID" is not one: column names are taken as written), so '
        "each row's id is a hash of its content: a row edited since an earlier push is stored as a new row "
        "beside the old one (pass --id-column ID)\n",
    )
    code, _, err = cli(emulator, tmp_path, capsys, path)
    assert code == 1 and err.endswith(
        '(the file has columns: "ID", "Input", "Expected"); pass --id-column ID --input Input --expected '
        "Expected (names are taken as written)\n"
    )


def test_a_field_s_own_column_mapped_by_another_flag_is_named_in_a_warning(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--metadata tags` sent the rows without tags, without a word.
    path = tmp_path / "qa.csv"
    path.write_text('id,input,tags\n1,q,"x,y"\n')
    code, _, err = cli(emulator, tmp_path, capsys, path, "--metadata", "tags")
    assert (code, err) == (
        0,
        'bt-sync: warning: qa.csv\'s "tags" column is mapped by --metadata, so no row has tags\n',
    )


def test_an_id_key_first_seen_after_the_mapping_is_no_id_column(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Sending as it checks, a JSON file is mapped by its first row's keys: a later `id` is not sent at all.
    path = tmp_path / "late.jsonl"
    path.write_text('{"input": 1}\n{"id": "x", "input": 2}\n')
    code, _, err = cli(emulator, tmp_path, capsys, path, "--no-validate-first")
    assert code == 0
    assert "late.jsonl has no id column, so each row's id is a hash" in err


@pytest.mark.parametrize("validate_first", [True, False], ids=["validate-first", "send-as-checked"])
def test_a_rejected_json_line_whose_number_was_rounded_is_kept_in_the_rejects_file_as_written(
    emulator: Emulator, tmp_path: Path, push: Any, validate_first: bool
) -> None:
    big_id = '{"id": 100000000000000000001, "input": "big"}'
    big_inside = '{"input": {"n": -100000000000000000001}}'  # no id, and a number the parser rounds
    (tmp_path / "f.jsonl").write_text('{"id": "a", "input": 1}\n' + big_id + "\n" + big_inside + "\r\n")
    rejects = tmp_path / "rejects.jsonl"
    summary = push(
        tmp_path / "f.jsonl", id_column="id", on_error="skip", rejects=rejects, validate_first=validate_first
    )
    assert (summary.rows_sent, summary.rows_skipped) == (1, 2)
    # Parsed, the ids read 1e+20 and -1e+20: the row could not be mended from the rejects file.
    rejected = [orjson.loads(line)["values"] for line in rejects.read_bytes().splitlines()]
    assert rejected == [big_id, big_inside]


def test_a_rejected_json_file_row_keeps_its_numbers_as_numbers_in_the_rejects_file(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    # A JSON file's fractions are read exactly (as decimals): the rejects file held them as text, "1.50",
    # and the row mended from it would have sent text where the file had a number.
    rows = [
        '{"id": "a", "input": {"n": 1.50, "e": 2.5e-3}, "tags": 5}',
        '{"id": "b", "input": {"n": 1.50, "x": 100000000000000000001}, "tags": 5}',  # beside a big integer
    ]
    path = tmp_path / "f.json"
    path.write_text("[" + ",\n".join(rows) + "]")
    rejects = tmp_path / "rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects, dry_run=True)
    assert summary.rows_skipped == 2
    values = [line.split(b'"values":')[1] for line in rejects.read_bytes().splitlines()]
    assert values == [
        b'{"id":"a","input":{"n":1.50,"e":0.0025},"tags":5},"dry_run":true}',
        b'{"id":"b","input":{"n":1.50,"x":100000000000000000001},"tags":5},"dry_run":true}',
    ]


# Half a surrogate pair escaped alone (`"\ud83d"`): a bad row in every format, never a "?" --------------


def json_array_holding_halves(path: Path, good_before: int) -> Path:
    """`good_before` good rows (more than a chunk's worth put the escape far from the start), then rows
    holding half a pair in a value and in a key, and an emoji escaped as a whole pair."""
    rows = [f'{{"id": "g{n}", "input": "plain"}}' for n in range(good_before)]
    rows += [
        r'{"id": "high", "input": "\ud83d alone", "metadata": {"score": 1.5}}',
        r'{"id": "pair", "input": "ok \ud83d\ude00"}',
        r'{"id": "low", "input": {"k\udc00": "v"}}',
        r'{"id": "last", "input": "plain"}',
    ]
    path.write_text("[" + ",\n".join(rows) + "]\n")
    return path


@pytest.mark.parametrize("good_before", [0, 2500])
def test_a_json_file_s_half_surrogates_are_refused_rows_and_whole_pairs_arrive(
    emulator: Emulator, tmp_path: Path, push: Any, good_before: int
) -> None:
    path = json_array_holding_halves(tmp_path / "halves.json", good_before)
    rejects = tmp_path / "halves.rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects)
    counts = (summary.rows_read, summary.rows_sent, summary.rows_skipped)
    assert counts == (good_before + 4, good_before + 2, 2)
    rows = stored(emulator)
    # The fast parser stored "?" for the high half: the rows before the escape are read once, not twice.
    assert (len(rows), rows["pair"]["input"], rows["last"]["input"]) == (good_before + 2, "ok 😀", "plain")
    refused = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["row"], r["reason"]) for r in refused] == [
        (good_before + 1, "invalid JSON (a string holds half of a surrogate pair, \\ud83d)"),
        (good_before + 3, "invalid JSON (a string holds half of a surrogate pair, \\udc00)"),
    ]
    # Escaped, as in the file (a decimal as its text: it was a traceback).
    assert refused[0]["values"] == r'{"id": "high", "input": "\ud83d alone", "metadata": {"score": "1.5"}}'


def test_a_half_surrogate_after_an_escaped_backslash_is_a_bad_row(
    emulator: Emulator, tmp_path: Path, push: Any
) -> None:
    path = tmp_path / "after.json"
    # `\\ud83d` is a backslash, then text: the low half after it is alone. Read as paired, it reached the
    # fast parser, which stopped the push: "not valid UTF-8 (byte 0xed…)".
    path.write_text(r'[{"id": "r1", "input": "ok"}, {"id": "r2", "input": "\\ud83d\udc00"}, {"id": "r3"}]')
    rejects = tmp_path / "after.rejects.jsonl"
    summary = push(path, on_error="skip", rejects=rejects)
    assert (summary.rows_sent, summary.rows_skipped, sorted(stored(emulator))) == (2, 1, ["r1", "r3"])
    assert [orjson.loads(line)["row"] for line in rejects.read_bytes().splitlines()] == [2]


def test_a_json_file_read_again_for_a_surrogate_reports_bad_json_in_one_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tab.json"
    path.write_text('[{"id": "a", "input": "\\ud83d\\ude00"},\n{"id": "b", "input": "a\tb"}]')
    code, _, err = cli(emulator, tmp_path, capsys, path)
    # The exact parser's error was a traceback; the fast parser's, for the same row, this line.
    assert code == 1 and err.startswith('bt-sync: error: tab.json near row 2: invalid JSON around "')
    assert nothing_created(emulator)


def test_a_json_file_s_half_surrogate_fails_the_push_naming_its_row(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "low.json"
    path.write_text(r'[{"id": "a", "input": "\udc00 low"}]')
    code, _, err = cli(emulator, tmp_path, capsys, path)
    # It said "not valid UTF-8 (byte 0xed at offset 0)" of a file of ASCII.
    half = "invalid JSON (a string holds half of a surrogate pair, \\udc00)"
    assert (code, err) == (1, f"bt-sync: error: low.json row 1: {half}\n")
    assert nothing_created(emulator)


def test_a_json_lines_file_of_bad_rows_only_writes_them_to_the_rejects_file(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "input": NaN}\n{"id": "b", "input": "\\udc00"}\n')
    rejects = tmp_path / "bad.rejects.jsonl"
    code, out, err = cli(emulator, tmp_path, capsys, path, "--on-error", "skip", "--rejects", str(rejects))
    # It stopped at the first line, as if the file were of another format, and wrote no rejects file.
    assert (code, "no row of bad.jsonl was stored: 2 rows rejected" in err) == (1, True)
    assert "pushed nothing" in out and "2 rows rejected" in out
    assert [orjson.loads(line)["row"] for line in rejects.read_bytes().splitlines()] == [1, 2]
    assert nothing_created(emulator)
    skip = ("--on-error", "skip", "--rejects", str(rejects))
    code, _, err = cli(emulator, tmp_path, capsys, path, *skip, "--no-validate-first")
    assert code == 1 and "none of its first lines is a JSON object that parses" in err


def nested(levels: int) -> str:
    return '{"k":' * levels + '"x"' + "}" * levels


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_rows_nested_too_deep_go_to_the_rejects_file_as_they_were_written(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    # A traceback (RecursionError), in a dry run too, where 300 levels gave a bad row.
    rows = [f'{{"id": "deep", "question": {nested(600)}}}', '{"id": "ok", "question": "x"}']
    if suffix == ".json":
        rows = [f'{{"id": "deeper", "question": {nested(3000)}}}', *rows]
    path = tmp_path / f"deep{suffix}"
    path.write_text("\n".join(rows) if suffix == ".jsonl" else f"[{', '.join(rows)}]")
    rejects = tmp_path / "deep.rejects.jsonl"
    skip = ("--input", "question", "--on-error", "skip", "--rejects", str(rejects))
    code, out, err = cli(emulator, tmp_path, capsys, path, *skip)
    assert (code, err) == (0, "")
    assert (
        out.startswith(f"pushed 1 row of deep{suffix}")
        and f"; {counted(len(rows) - 1, 'rows')} rejected" in out
    )
    written = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    too_deep = "its values nest deeper than the 255 levels JSON writers take"
    assert [
        (record["row"], record["reason"].removesuffix(" (too deep to copy here)")) for record in written
    ] == [(number, too_deep) for number in range(1, len(rows))]
    # The row as it was, to be mended (a JSON Lines row as its line), unless no JSON writer here takes it.
    kept = orjson.loads(rows[-2]) if suffix == ".json" else rows[-2]
    assert written[-1]["values"] == kept
    assert stored(emulator).keys() == {"ok"}


def test_a_line_nested_past_the_interpreters_recursion_is_refused_in_one_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Deciding whether the line was its event stopped the push with a RecursionError and its traceback.
    depth = 3000
    deep = b'{"id": "r1", "input": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}\n"
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"id": "r0", "input": {"q": 1}}\n' + deep)
    code, _, err = cli(emulator, tmp_path, capsys, path)
    assert (code, err.count("\n")) == (1, 1) and "row 2" in err, err
    assert nothing_created(emulator)
