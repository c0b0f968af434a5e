"""`bt-sync push` as users and schedulers run it: exit codes, one-line errors, summaries, kill -9."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connector.cli import main
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.push.run import EVERY_ROW_REFUSED_AFTER
from tests.helpers import cli_env, cli_in_process, cli_peak_rss_mib
from tests.push.helpers import (
    CSV_AS_EVENTS,
    acked_batches,
    inserts,
    push_process,
    run_cli,
    same_rows,
    write_csv,
)


def test_json_summary_for_schedulers(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", 40)
    code, out, err = run_cli(
        emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset", "d", "--json"
    )
    summary = orjson.loads(out)
    assert (code, err) == (0, "")
    assert {k: summary[k] for k in ("rows_read", "rows_sent", "rows_skipped", "batches", "retries")} == {
        "rows_read": 40,
        "rows_sent": 40,
        "rows_skipped": 0,
        "batches": 1,
        "retries": 0,
    }
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="d"))
    assert summary["dataset_id"] == dataset["id"]


# The console script, with a line on stderr from an exit handler and one from tearing down `__main__`.
SHUTDOWN_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('exit handlers ran', file=sys.stderr))\n"
    "class Probe:\n"
    "    def __del__(self): print('torn down', file=sys.stderr)\n"
    "probe = Probe()\n"
    "from connector.cli import run; run()"
)


def test_the_command_runs_the_exit_handlers_then_exits_without_tearing_the_interpreter_down(
    tmp_path: Path,
) -> None:
    # pyarrow parses a CSV file on threads of its own, which may still be calling back into Python
    # (here for the malformed row) when the interpreter shuts down: that aborts the process.
    csv = tmp_path / "d.csv"
    csv.write_bytes(b"input,expected\nq,a\nx,\xff,z\n")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes(b'{"input": "q"}\n')
    dry_run = ("--project", "p", "--dataset", "d", "--dry-run")
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", SHUTDOWN_PROBE, "push", str(path), *dry_run], capture_output=True
        )
        for path in (csv, jsonl)
    ]
    (csv_done, jsonl_done) = outcomes
    assert (csv_done.returncode, jsonl_done.returncode) == (1, 0)
    assert csv_done.stderr.splitlines()[-2].startswith(
        b"bt-sync: error: d.csv: cannot read it (CSV parse error"
    )
    assert [done.stderr.splitlines()[-1] for done in outcomes] == [b"exit handlers ran"] * 2
    assert not any(b"torn down" in done.stderr for done in outcomes)
    assert jsonl_done.stdout.startswith(b"dry run: 1 of 1 row of d.jsonl is valid")


def push_under_probe(probe: str, path: Path, emulator: Emulator, tmp_path: Path) -> str:
    """`bt-sync push path` into the emulator, run by the Python code `probe` (which calls the CLI's
    `main`) in a process of its own; its stderr, once it has succeeded."""
    command = [sys.executable, "-c", probe, "push", str(path), "--project", "p", "--dataset", "d"]
    command += ["--id-column", "id", "--api-url", emulator.url, "--state-dir", str(tmp_path / "state")]
    env = os.environ | {"BRAINTRUST_API_KEY": emulator.api_key}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


# Reports, as its last line on stderr, which of the libraries a push of JSON never needs were imported.
IMPORTS_PROBE = (
    "import atexit, sys; atexit.register(lambda: print(sorted(m for m in ('duckdb', 'numpy', 'pyarrow') "
    "if m in sys.modules), file=sys.stderr)); from connector.cli import main; main()"
)


@pytest.mark.parametrize(
    ("name", "heavy"),
    [("data.jsonl", []), ("data.json", []), ("data.csv", ["numpy", "pyarrow"])],
)
def test_a_push_imports_duckdb_and_pyarrow_only_for_what_needs_them(
    emulator: Emulator, tmp_path: Path, name: str, heavy: list[str]
) -> None:
    rows = [{"id": f"r{n}", "input": {"q": n}, "expected": n} for n in range(30)]
    path = tmp_path / name
    if name.endswith(".csv"):
        write_csv(path, 30)
    else:
        lines = [orjson.dumps(row) for row in rows]
        path.write_bytes(b"\n".join(lines) if name.endswith(".jsonl") else b"[" + b",".join(lines) + b"]")
    stderr = push_under_probe(IMPORTS_PROBE, path, emulator, tmp_path)
    # Sent, so the whole path ran: reading, checking, indexing ids, sending, checkpointing.
    assert inserts(emulator) == 30
    assert stderr.splitlines()[-1] == repr(heavy)


# Makes every JSON Lines file large enough for the helper, and reports, when it starts, whether the API
# client's modules (httpx, the settings) were imported yet.
HELPER_PROBE = (
    "import sys; import connector.push.lines_ahead as ahead, connector.push.run as run; "
    "run.helps = lambda source: True; start = ahead.LinesAhead.__init__; "
    "ahead.LinesAhead.__init__ = lambda self, *args: (print('client imported when the helper started:', "
    "'httpx' in sys.modules, file=sys.stderr), start(self, *args))[1]; "
    "from connector.cli import main; main()"
)


def test_a_push_starts_its_helper_before_importing_the_api_client(emulator: Emulator, tmp_path: Path) -> None:
    # The client's modules take 0.3 s to import: a large file's helper decides lines meanwhile.
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"id": f"r{n}", "input": n}) for n in range(30)))
    stderr = push_under_probe(HELPER_PROBE, path, emulator, tmp_path)
    assert inserts(emulator) == 30
    assert "client imported when the helper started: False" in stderr.splitlines()


def test_human_summary_and_rerun_message(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", 30)
    args = (str(path), "--project", "p", "--dataset", "d", "--batch-rows", "10")
    code, out, _ = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 0
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="d"))
    # A typo's project would be new too: the line says what the push created.
    assert out.startswith(
        f"pushed 30 rows of data.csv to dataset 'd' in project 'p' ({dataset['id']}, created now with its "
        "project) in 3 batches"
    )
    assert 'columns not sent: "note"' in out
    code, out, _ = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 0
    assert out.startswith(
        "data.csv was already pushed to dataset 'd' in project 'p' (30 rows sent); nothing sent (use --force"
    )
    assert inserts(emulator) == 30
    more = write_csv(tmp_path / "more.csv", 5)
    code, out, _ = run_cli(
        emulator, tmp_path, capsys, str(more), "--project", "p", "--dataset", "e", "--json"
    )
    assert orjson.loads(out)["created"] == ["dataset"]
    code, out, _ = run_cli(emulator, tmp_path, capsys, str(more), "--project", "p", "--dataset", "d")
    assert f"in project 'p' ({dataset['id']}) in 1 batch" in out


# A valid row, then one that is not JSON (row 2).
ONE_BAD_ROW = b'{"id": "a", "input": 1}\n{"id": "b", bad}\n'


def skipping_bad_rows(tmp_path: Path, rows: bytes, rejects: Path) -> list[str]:
    """The arguments of a push of `rows`, JSON Lines written to `data.jsonl`, into dataset `d` of project
    `p`, its bad rows going to `rejects`."""
    path = tmp_path / "data.jsonl"
    path.write_bytes(rows)
    return [str(path), "--project", "p", "--dataset", "d", "--on-error", "skip", "--rejects", str(rejects)]


def test_a_rerun_of_a_complete_push_says_what_it_rejected_and_left_out(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = b'{"id": "a", "input": 1}\n{"id": "b", bad}\n{"id": "a", "input": 2}\n{"id": "c"}\n'
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_bad_rows(tmp_path, rows, rejects)
    code, first, _ = run_cli(emulator, tmp_path, capsys, *args, "--json")
    assert (code, orjson.loads(first)["earlier"]) == (0, None)
    args[-1] = str(tmp_path / "other.jsonl")  # the rerun reads nothing, so it rejects nothing either
    code, again, _ = run_cli(emulator, tmp_path, capsys, *args, "--json")
    summary = orjson.loads(again)
    assert (code, summary["already_complete"], summary["rows_sent"], summary["rows_skipped"]) == (
        0,
        True,
        0,
        0,
    )
    earlier = {"rows_sent": 2, "rows_skipped": 1, "rows_duplicate": 1, "rejects": str(rejects)}
    assert summary["earlier"] == earlier
    code, again, _ = run_cli(emulator, tmp_path, capsys, *args)
    assert (code, again) == (
        0,
        f"data.jsonl was already pushed to dataset 'd' in project 'p' (2 rows sent; 1 row rejected (written "
        f"to {rejects}); 1 row left out: a later row has the same id); nothing sent (use --force to send it "
        "again).\n",
    )
    assert inserts(emulator) == 2


def test_a_dry_run_never_replaces_the_rows_a_push_did_not_send(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_bad_rows(tmp_path, ONE_BAD_ROW, rejects)
    assert run_cli(emulator, tmp_path, capsys, *args)[0] == 0
    not_sent = rejects.read_bytes()
    assert not_sent.count(b"\n") == 1
    # It emptied the file, the only list of the row the push did not send (its rerun writes none).
    code, out, err = run_cli(emulator, tmp_path, capsys, *args, "--dry-run")
    assert (code, out) == (2, "")
    assert err == (
        f"bt-sync: error: --rejects {rejects} holds the rows a push did not send, which a dry run would "
        "replace: name another file for the dry run\n"
    )
    assert rejects.read_bytes() == not_sent
    # A dry run's own rejects it replaces, run after run.
    previewed = tmp_path / "preview.jsonl"
    for _ in range(2):
        assert run_cli(emulator, tmp_path, capsys, *args[:-1], str(previewed), "--dry-run")[0] == 0
        (record,) = [orjson.loads(line) for line in previewed.read_bytes().splitlines()]
        assert (record["row"], record["dry_run"]) == (2, True)


def test_a_dry_run_writes_its_rejects_into_a_fifo(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Opened to look whether it held a push's rejects, the FIFO waited for a writer: the dry run hung.
    fifo = tmp_path / "rejects"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()))
    reader.start()
    args = skipping_bad_rows(tmp_path, ONE_BAD_ROW, fifo)
    assert run_cli(emulator, tmp_path, capsys, *args, "--dry-run")[0] == 0
    reader.join(timeout=30)
    assert [orjson.loads(line)["row"] for line in read[0].splitlines()] == [2]


def test_the_summary_shows_names_as_written(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", 3)
    code, out, _ = run_cli(emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset", "ds\\tab")
    assert code == 0 and "to dataset 'ds\\tab' in project 'p'" in out


def skipping_into_rejects(path: Path, rejects: Path) -> tuple[str, ...]:
    """The arguments pushing `path` into p/d, its bad rows set aside in `rejects`."""
    return (str(path), "--project", "p", "--dataset", "d", "--on-error", "skip", "--rejects", str(rejects))


def test_the_summary_of_a_file_whose_every_row_was_rejected_names_no_dataset_id(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('id,input\na,"unclosed\n')
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_into_rejects(path, rejects)
    code, out, err = run_cli(emulator, tmp_path, capsys, *args)
    # Nothing stored is a failure, even with --on-error skip: a scheduled backfill of a file in the wrong
    # shape exited 0 with every row set aside.
    refused = f"no row of bad.csv was stored: 1 row rejected (written to {rejects}); mend them and push again"
    assert (code, err.strip()) == (1, f"bt-sync: error: {refused}")
    # Nothing was created: "pushed 0 rows … to dataset 'd' in project 'p'" named a dataset that is not.
    assert out.startswith("pushed nothing of bad.csv, and created no dataset 'd' in project 'p', ")
    assert out.rstrip().endswith(f"; 1 row rejected (written to {rejects}).")
    # Into a dataset that is there, the same words: nothing pushed, not "0 rows in 0 batches".
    code, _, _ = run_cli(emulator, tmp_path, capsys, str(write_csv(tmp_path / "good.csv", 2)), *args[1:5])
    code, out, _ = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 1 and re.match(
        r"pushed nothing of bad\.csv to dataset 'd' in project 'p' \([0-9a-f-]{36}\), ", out
    )


def test_a_dry_run_of_a_file_with_no_valid_row_fails_after_its_summary(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "a", "input": NaN}\n{"id": "b"\n')
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_into_rejects(path, rejects)
    code, out, err = run_cli(emulator, tmp_path, capsys, *args, "--dry-run", "--json")
    refused = (
        f"dry run: no row of bad.jsonl would be stored: 2 rows rejected (written to {rejects}); mend them "
        "before pushing"
    )
    assert err.strip() == f"bt-sync: error: {refused}"
    # The summary says so too, as a failed command's document does: beside exit 1 it read as a success.
    summary = orjson.loads(out)
    assert (code, summary["rows_skipped"], summary["error"], summary["exit_code"]) == (1, 2, refused, 1)
    # One valid row is enough: the rest is what --on-error skip is for.
    path.write_bytes(b'{"id": "a", "input": 1}\n{"id": "b"\n')
    code, out, _ = run_cli(emulator, tmp_path, capsys, *args, "--json")
    summary = orjson.loads(out)
    assert (code, summary["rows_sent"], "error" in summary, "exit_code" in summary) == (0, 1, False, False)


@pytest.mark.parametrize(
    ("content", "args", "code", "message"),
    [
        (
            b'input\nok\n"{""a"": 1,}"\n',
            (),
            1,
            'bad.csv row 2, column "input": invalid JSON (trailing comma is not allowed at char 7); '
            "pass --no-parse-json to send such values as text",
        ),
        (
            b"q\nx\n",
            ("--input", "question"),
            1,
            'bad.csv: no column "question" (from --input); the file has columns: "q"',
        ),
        (b"", (), 1, "bad.csv is empty"),
        (
            b"input\n\xe9t\xe9\n",
            (),
            1,
            'bad.csv row 1, column "input": not valid UTF-8 (byte 0xe9 at offset 0)',
        ),
        (
            b"input\nq\n",
            ("--on-error", "skip"),
            2,
            "invalid setting: --rejects: --on-error skip needs --rejects (a file), so skipped rows are kept",
        ),
        (
            b"input\nq\n",
            ("--dataset", "  "),
            2,
            "invalid setting: --dataset: names nothing: give a name that is not blank",
        ),
        (
            b"input\nq\n",
            ("--project", ""),
            2,
            "invalid setting: --project: names nothing: give a name that is not blank",
        ),
        # Bytes the shell passed that are not UTF-8 (Python holds them as lone surrogates).
        (b"input\nq\n", ("--project", "\udcff\udcfe"), 2, "invalid setting: --project: is not UTF-8 text"),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    exit_code, out, err = run_cli(
        emulator, tmp_path, capsys, str(tmp_path / "bad.csv"), "--project", "p", "--dataset", "d", *args
    )
    assert (exit_code, out, err) == (code, "", f"bt-sync: error: {message}\n")
    assert inserts(emulator) == 0
    assert emulator.store.list_objects("project", ListQuery()) == []


def test_dry_run_needs_no_api_key(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    path = write_csv(tmp_path / "data.csv", 25)
    monkeypatch.setattr(
        sys, "argv", ["bt-sync", "push", str(path), "--project", "p", "--dataset", "d", "--dry-run"]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    assert (
        capsys.readouterr().out
        == 'dry run: 25 of 25 rows of data.csv are valid, 1 batch; columns not sent: "note".\n'
    )
    assert emulator.stats.snapshot()["requests"] == {}


def test_kill_9_mid_push_then_rerun_sends_the_rest_exactly_once(emulator: Emulator, tmp_path: Path) -> None:
    rows, batch_rows, concurrency = 2_000, 20, 2
    path = write_csv(tmp_path / "data.csv", rows)
    state = tmp_path / "state"
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.03, times=None))
    victim = push_process(
        emulator, path, state, "--batch-rows", str(batch_rows), "--concurrency", str(concurrency)
    )
    deadline = time.monotonic() + 30
    while acked_batches(state) < 15 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    applied_before_kill = inserts(emulator)
    assert 15 * batch_rows <= applied_before_kill < rows

    emulator.faults.clear()
    rerun = push_process(emulator, path, state, "--batch-rows", str(batch_rows), "--json")
    out, err = rerun.communicate(timeout=60)
    assert (rerun.returncode, err) == (0, b"")
    summary = orjson.loads(out)
    assert summary["rows_resumed"] >= 15 * batch_rows
    assert summary["rows_resumed"] + summary["rows_sent"] == rows
    # Only batches in flight at the kill were applied without being checkpointed, and so sent twice.
    assert inserts(emulator) - rows <= concurrency * batch_rows

    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="d"))
    live = emulator.store.live_rows("dataset", dataset["id"])
    same_rows(live, CSV_AS_EVENTS.format(path=path), tmp_path)


# The probe's own peak (VmHWM, kB), not `ru_maxrss`: Linux starts a child's at its parent's peak, and a
# test process past the push's peak made every growth read 0.
MEMORY_PROBE = """
import sys
from pathlib import Path
from connector.progress import NullProgress
from connector.push.run import PushOptions, push_file

def peak_kib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))

baseline = peak_kib()
options = PushOptions(file=Path(sys.argv[1]), project="p", dataset="d", dry_run=True)
summary = push_file(None, options, NullProgress())
print(summary.rows_read, (peak_kib() - baseline) // 1024)
"""


def write_kilobyte_rows(path: Path, rows: int) -> Path:
    """A CSV file of `rows` rows of about 1 kB each."""
    pad = "x" * 1000
    with path.open("w") as handle:
        handle.write("id,input,expected\n")
        handle.writelines(f'{n},"{{""q"": ""{pad}"", ""n"": {n}}}",answer {n}\n' for n in range(rows))
    return path


def write_kilobyte_parquet(path: Path, rows: int) -> Path:
    """A Parquet file of `rows` rows of about 1 kB of text that does not compress, in one row group."""
    table = pa.table(
        {"id": [str(n) for n in range(rows)], "input": [os.urandom(500).hex() for _ in range(rows)]}
    )
    pq.write_table(table, path, row_group_size=rows)
    return path


def growth_beside_file_growth(
    write: Callable[[int], Path], measure_mib: Callable[[Path, int], float], sizes: tuple[int, int]
) -> tuple[float, float]:
    """How much more memory `measure_mib` found for a file of the larger of `sizes` rows than of the
    smaller, and how much bigger that file is, both in MiB."""
    measured: list[float] = []
    file_mib: list[float] = []
    for rows in sizes:
        path = write(rows)
        file_mib.append(path.stat().st_size / 2**20)
        measured.append(measure_mib(path, rows))
    return measured[1] - measured[0], file_mib[1] - file_mib[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("write", "suffix"),
    [(write_kilobyte_rows, ".csv"), (write_kilobyte_parquet, ".parquet")],
    ids=["csv", "parquet"],
)
def test_memory_is_bounded_by_the_batch_not_the_file(
    tmp_path: Path, write: Callable[[Path, int], Path], suffix: str
) -> None:
    def dry_run_growth_mib(path: Path, rows: int) -> float:
        probe = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, check=True
        )
        read, grown_mib = map(int, probe.stdout.split())
        assert read == rows
        return grown_mib

    more_growth, more_file = growth_beside_file_growth(
        lambda rows: write(tmp_path / f"rows-{rows}{suffix}", rows), dry_run_growth_mib, (30_000, 150_000)
    )
    # Reading, mapping and batching 115-120 MB more file (Parquet in one row group, which pyarrow read
    # whole by default) adds 0-40 MB (the ids, the reader's buffers). A bound on the difference, not on
    # one growth: that moves by 10-15 MB from run to run (142-158 MB for the smaller CSV file), while
    # holding the file, or a row group, adds all of it.
    assert more_growth < 0.5 * more_file, (more_growth, more_file)


@pytest.mark.slow
@pytest.mark.parametrize("way", [(), ("--no-validate-first",)], ids=["validate-first", "send-as-checked"])
def test_memory_sending_is_bounded_by_the_batch_not_the_file(
    emulator: Emulator, tmp_path: Path, way: tuple[str, ...]
) -> None:
    def push_peak_mib(path: Path, rows: int) -> float:
        return cli_peak_rss_mib(
            "push", str(path), "--project", "p", "--dataset", f"d{rows}", "--api-url", emulator.url,
            "--state-dir", str(tmp_path / "state"), *way,
            env={"BRAINTRUST_API_KEY": emulator.api_key},
        )  # fmt: skip

    grown, more_file = growth_beside_file_growth(
        lambda rows: write_kilobyte_rows(tmp_path / f"rows-{rows}.csv", rows),
        push_peak_mib,
        (20_000, 160_000),
    )
    assert sum(emulator.stats.rows_inserted.values()) == 180_000
    # 140 MB more file to read, validate, index and send: the peak stays where the batches put it. A
    # bound on the growth, not a ratio: one push's peak moves by 20-30 MB from run to run on two cores
    # (218-243 MB for the smaller file here; with 80 MB more file, the growth once reached 61 MB), while
    # holding the file would add all of its 140 MB.
    assert grown < 0.6 * more_file, (grown, more_file)


def test_a_spreadsheet_export_s_unnamed_columns_are_left_out(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Excel writes a separator for every empty column at the end of each line; a named column repeated
    # is still refused.
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,input,expected,,\r\na,1,2,,\r\nb,3,4,,\r\n")
    code, out, err = run_cli(emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset", "d")
    assert (code, err) == (0, "")
    assert out.endswith('; columns not sent: "", "".\n')
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    rows = {
        row["id"]: (row["input"], row["expected"])
        for row in emulator.store.live_rows("dataset", dataset["id"])
    }
    assert rows == {"a": ("1", "2"), "b": ("3", "4")}
    # No flag may name an unnamed column: which of them it meant could not be told.
    path.write_bytes(b"id,input,,\na,1,kept,\nb,2,,last\n")
    for flag in ("--input", "--expected", "--metadata", "--tags", "--id-column"):
        code, _, err = run_cli(
            emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset", "d", flag, ""
        )
        assert code == 2 and f"invalid setting: {flag}: names a column without a name" in err
    path.write_bytes(b"id,input,input\na,1,2\n")
    code, _, err = run_cli(emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset", "d")
    assert code == 1 and 'more than one column is named "input"' in err


def test_a_project_or_dataset_named_by_an_id_or_with_a_space_at_an_end_is_not_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = emulator.store
    project = store.create_project("support")
    dataset = store.create_dataset(project["id"], "golden")
    spaced = store.create_project(" spaced ")
    path = write_csv(tmp_path / "data.csv", 3)
    refused = {
        (project["id"], "new"): f"--project takes a name, and {project['id']} is the id of the project "
        "'support': pass --project support",
        ("support", dataset["id"]): f"--dataset takes a name, and {dataset['id']} is the id of the dataset "
        "'golden': pass --dataset golden",
        (" support", "new"): "--project ' support' begins or ends with a space, and no project is named so; "
        "give the name without it",
        (
            "support",
            "golden ",
        ): "--dataset 'golden ' begins or ends with a space, and no dataset is named so; "
        "give the name without it",
    }
    objects = {kind: len(store.list_objects(kind, ListQuery())) for kind in ("project", "dataset")}
    for (project_name, dataset_name), message in refused.items():
        args = (str(path), "--project", project_name, "--dataset", dataset_name)
        assert run_cli(emulator, tmp_path, capsys, *args) == (2, "", f"bt-sync: error: {message}\n")
    # A dry run, which asks the API nothing, said the push would go, and it was refused.
    code, _, err = run_cli(emulator, tmp_path, capsys, *args, "--dry-run")
    assert (code, err) == (
        0,
        "bt-sync: warning: --dataset 'golden ' begins or ends with a space: the push refuses it unless a "
        "dataset is named so (a dry run asks nothing)\n",
    )
    assert {kind: len(store.list_objects(kind, ListQuery())) for kind in objects} == objects
    # Named exactly as it is, an object is found whatever its name.
    code, out, _ = run_cli(
        emulator, tmp_path, capsys, str(path), "--project", " spaced ", "--dataset", "golden"
    )
    assert code == 0 and "to dataset 'golden' in project ' spaced '" in out
    assert store.list_objects("dataset", ListQuery(project_id=spaced["id"]))[0]["name"] == "golden"


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (("--project", "support", "--dataset", "--dry-run"), "--dataset is followed by the option --dry-run"),
        (("--project", "--dry-run", "--dataset", "golden"), "--project is followed by the option --dry-run"),
        # Help and a misspelt option were names too.
        (
            ("--project", "support", "--dataset", "--help"),
            "--dataset is followed by '--help', which looks like an option",
        ),
        (
            ("--project", "support", "--dataset", "--dryrun"),
            "--dataset is followed by '--dryrun', which looks like an option",
        ),
        (
            ("--project", "support", "--dataset", "golden", "--input", "--json", "--dry-run"),
            "--input is followed by the option --json",
        ),
    ],
)
def test_an_option_given_where_a_name_was_due_is_refused_and_nothing_is_pushed(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    refused: str,
) -> None:
    # `--dataset --dry-run` pushed the file for real into a dataset named `--dry-run`, exit 0.
    store = emulator.store
    objects = {kind: len(store.list_objects(kind, ListQuery())) for kind in ("project", "dataset")}
    path = write_csv(tmp_path / "data.csv", 3)
    code, out, err = run_cli(emulator, tmp_path, capsys, str(path), *args)
    assert (code, out) == (2, "")
    assert f"Error: {refused}, not by its value" in err
    assert {kind: len(store.list_objects(kind, ListQuery())) for kind in objects} == objects
    assert inserts(emulator) == 0


def test_a_name_starting_with_two_dashes_is_given_joined_to_its_option(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", 3)
    code, out, _ = run_cli(emulator, tmp_path, capsys, str(path), "--project", "p", "--dataset=--dry-run")
    assert code == 0 and "to dataset '--dry-run'" in out


@pytest.mark.parametrize("name", ["-data.csv", "--data.csv"])
def test_a_file_named_like_an_option_is_taken_as_the_file_after_two_dashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The stub command's own parsing dropped the `--`: "No such option: -d".
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / name, 3)
    argv = ["bt-sync", "push", "--project", "p", "--dataset", "d", "--dry-run", "--", name]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert (exited.value.code, err) == (0, "")
    assert out.startswith(f"dry run: 3 of 3 rows of {name} are valid")


def test_a_project_or_dataset_name_reading_as_another_s_is_not_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = emulator.store
    # Accents apart (e then U+0301), as a name copied from macOS has them.
    apart = "cafe\u0301"
    project = store.create_project(apart)
    store.create_dataset(project["id"], "golden")
    store.create_dataset(project["id"], "gol-den")
    store.create_project("my project\u200f")
    path = write_csv(tmp_path / "data.csv", 3)
    reads_as = (
        "reads as the name of the project '{}', and differs from it in characters that show alike or not "
        "at all, or in how its accents are encoded: pass the name as the API has it (copied from `bt-sync "
        "projects --json`, or in the shell's $'…' with its \\u escapes), or choose another"
    )
    shown = "my project\\u200f"  # as messages show that name
    refused = {
        ("caf\u00e9", "new"): f"--project 'caf\u00e9' {reads_as.format(apart)}",
        # A no-break space (a web page's), a combining grapheme joiner: shown alike, or as nothing.
        ("my\u00a0project", "new"): f"--project 'my\\xa0project' {reads_as.format(shown)}",
        # A word processor's non-breaking hyphen, or en dash, for the hyphen: a dataset was made beside.
        (
            "cafe\u0301",
            "gol\u2011den",
        ): "--dataset 'gol\u2011den' reads as the name of the dataset 'gol-den', "
        "and differs from it in characters that show alike or not at all, or in how its accents are encoded: "
        "pass the name as the API has it (copied from `bt-sync projects --json`, or in the shell's $'…' with "
        "its \\u escapes), or choose another",
        ("my project\u034f", "new"): "--project 'my project\\u034f' holds an invisible character, and no "
        "project is named so; give the name without it",
        # The name as a message shows it, copied from there: a backslash, then `u200f`.
        (shown, "new"): f"--project 'my project\\\\u200f' {reads_as.format(shown)}",
        # Pasted with a zero-width space, or a byte order mark: shown escaped, as nothing else shows them.
        ("cafe\u0301\u200b", "new"): "--project 'cafe\u0301\\u200b' holds an invisible character, and no "
        "project is named so; give the name without it",
        ("cafe\u0301", "\ufeffgolden"): "--dataset '\\ufeffgolden' holds an invisible character, and no "
        "dataset is named so; give the name without it",
        # A line break or a tab pasted with it.
        ("cafe\u0301", "golden\nnew"): "--dataset 'golden\\nnew' holds a control character, and no dataset "
        "is named so; give the name without it",
        ("p\tq", "golden"): "--project 'p\\tq' holds a control character, and no project is named so; give "
        "the name without it",
    }
    objects = {kind: len(store.list_objects(kind, ListQuery())) for kind in ("project", "dataset")}
    for (project_name, dataset_name), message in refused.items():
        args = (str(path), "--project", project_name, "--dataset", dataset_name)
        assert run_cli(emulator, tmp_path, capsys, *args) == (2, "", f"bt-sync: error: {message}\n")
    assert {kind: len(store.list_objects(kind, ListQuery())) for kind in objects} == objects
    # Named as it is, an object is found, whatever it holds.
    for name in (apart, "my project\u200f"):
        code, out, _ = run_cli(
            emulator, tmp_path, capsys, str(path), "--project", name, "--dataset", "golden"
        )
        assert code == 0 and out.startswith("pushed 3 rows of data.csv to dataset 'golden' in project ")


def test_column_names_holding_invisible_characters_are_shown_escaped(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A word joiner before a name, a zero-width space after one: both read as "id", and "no column "id";
    # the file has columns: "id", "input"" contradicted itself.
    joined, spaced = tmp_path / "joined.csv", tmp_path / "spaced.csv"
    joined.write_bytes("\u2060id,input\n1,a\n".encode())
    spaced.write_bytes("id\u200b,input\n1,a\n".encode())
    args = ("--project", "p", "--dataset", "d", "--dry-run")
    code, out, _ = run_cli(emulator, tmp_path, capsys, str(joined), *args)
    assert code == 0 and out.rstrip().endswith('; columns not sent: "\\u2060id".')
    # A byte order mark written twice (a tool adding one to text that has one): the second was a part of
    # the first name, `\ufeffid`, and each row's id a hash.
    doubled = tmp_path / "doubled.csv"
    doubled.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbfid,input\n1,a\n")
    code, out, err = run_cli(emulator, tmp_path, capsys, str(doubled), *args)
    assert (code, err) == (0, "") and "columns not sent" not in out
    code, _, err = run_cli(emulator, tmp_path, capsys, str(spaced), *args, "--id-column", "id")
    assert (code, err) == (
        1,
        'bt-sync: error: spaced.csv: no column "id" (from --id-column); the file has columns: "id\\u200b", '
        '"input"\n',
    )


def test_a_push_whose_valid_rows_a_refused_row_of_their_id_leaves_out_stores_nothing_and_fails(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_bytes(b'{"id": "a", "input": 1}\n{"id": "a", "input": 2, "tags": 5}\n')
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_into_rejects(path, rejects)
    # The dry run passed, and the push created an empty dataset.
    code, _, err = run_cli(emulator, tmp_path, capsys, *args, "--dry-run")
    assert code == 1 and "error: dry run: no row of dup.jsonl would be stored: 1 row rejected" in err
    code, _, err = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 1 and "error: no row of dup.jsonl was stored: 1 row rejected" in err
    assert emulator.store.list_objects("project", ListQuery()) == []


def test_a_rerun_of_a_complete_push_whose_every_row_the_api_refused_fails_too(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", 3)
    rejects = tmp_path / "rejects.jsonl"
    args = skipping_into_rejects(path, rejects)
    emulator.faults.add(FaultRule(kind="status", status=400, route="/insert", times=None))
    code, _, err = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 1 and "error: no row of data.csv was stored: 3 rows rejected" in err
    emulator.faults.clear()
    # Its checkpoint says it is complete: the rerun sent nothing and exited 0.
    code, out, err = run_cli(emulator, tmp_path, capsys, *args)
    assert code == 1 and out.startswith("data.csv was already pushed to dataset 'd' in project 'p'")
    assert "error: no row of data.csv was stored by the push that completed earlier: 3 rows rejected" in err


def test_a_push_skipping_refused_rows_stops_when_the_api_refuses_every_row(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every insert answered 400 (a proxy refusing them all): each row was sent alone, two requests a row.
    rows = 3_000
    path = write_csv(tmp_path / "data.csv", rows)
    emulator.faults.add(FaultRule(kind="status", status=400, route="/insert", times=None))
    code, _, err = run_cli(emulator, tmp_path, capsys, *skipping_into_rejects(path, tmp_path / "r.jsonl"))
    assert code == 1
    assert (
        f"error: data.csv: stopped after {EVERY_ROW_REFUSED_AFTER} rows, each sent alone, were refused" in err
    )
    assert err.endswith(
        "the API refuses every row, not a few bad ones; check what it says, then push again\n"
    )
    requests = emulator.stats.snapshot()["requests"]
    sent = sum(n for key, n in requests.items() if "insert" in key)
    assert 0 < sent < rows / 2, requests
    # Once the API takes rows again, the rerun sends them all: no batch was checkpointed as refused.
    emulator.faults.clear()
    code, _, err = run_cli(emulator, tmp_path, capsys, *skipping_into_rejects(path, tmp_path / "r.jsonl"))
    assert (code, inserts(emulator)) == (0, rows), err


def test_the_summary_shows_the_control_characters_of_names_escaped(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The terminal dropped `ESC[2J` (naming another file), and a line break broke the one-line summary.
    path = tmp_path / "f\x1b[2Jx.csv"
    path.write_text('id,input\n1,"{bad"\n2,ok\n')
    rejects = ("--on-error", "skip", "--rejects", str(tmp_path / "r\nx.jsonl"))
    done = cli_in_process(
        capfd,
        "push",
        str(path),
        "--project",
        "p",
        "--dataset",
        "d",
        *rejects,
        env=cli_env(emulator, tmp_path),
    )
    assert done.returncode == 0 and done.stdout.count("\n") == 1, done.stderr
    assert done.stdout.startswith("pushed 1 row of f\\x1b[2Jx.csv to dataset 'd'")
    assert done.stdout.endswith(f"1 row rejected (written to {tmp_path}/r\\x0ax.jsonl).\n")
    # Its warnings too: "no<line break>id.csv has no id column".
    path = tmp_path / "no\nid.csv"
    path.write_text("input\na\n")
    done = cli_in_process(capfd, "push", str(path), "--project", "p", "--dataset", "d", "--dry-run")
    assert done.stderr.startswith("bt-sync: warning: no\\x0aid.csv has no id column") and done.stderr.count(
        "\n"
    ) == len(done.stderr.splitlines()), done.stderr
    assert "\nid.csv" not in done.stderr


def test_a_dash_names_no_rejects_file_and_no_query_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--rejects -` made a file named `-`; `--sql-file -` said "No such file or directory".
    monkeypatch.chdir(tmp_path)
    path = write_csv(tmp_path / "data.csv", 3)
    push = ("push", "--project", "p", "--dataset", "d", "--dry-run")
    done = cli_in_process(capfd, *push, str(path), "--on-error", "skip", "--rejects", "-")
    assert (done.returncode, done.stderr) == (
        2,
        "bt-sync: error: invalid setting: --rejects: - names no file: give the rejects file's path\n",
    )
    done = cli_in_process(capfd, *push, "--sql-file", "-")
    assert (done.returncode, done.stderr) == (
        2,
        "bt-sync: error: --sql-file -: names no file, not standard input: give the query's file, or the "
        "query in --sql\n",
    )
    assert not (tmp_path / "-").exists()


def test_a_flag_naming_one_column_given_two_is_a_usage_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # `--tags tg --tags m` (as `--metadata` is repeated) sent `m` alone, `tg` named "not sent" only.
    path = tmp_path / "m.csv"
    path.write_text("id,q,a,tg,m\n1,hello,world,x,src\n")
    push = ("push", str(path), "--project", "p", "--dataset", "d", "--input", "q", "--dry-run")
    for flags, flag in (
        (("--tags", "tg", "--tags=m"), "--tags"),
        (("--id-column=id", "--id-column", "q"), "--id-column"),
    ):
        done = cli_in_process(capfd, *push, *flags)
        assert done.returncode == 2 and done.stderr.endswith(
            f"Error: {flag} is given two columns: it takes one\n"
        )
    # Repeated alike, or repeatable (`--expected`), it is taken as given.
    done = cli_in_process(capfd, *push, "--tags", "m", "--tags", "m", "--expected", "a", "--expected", "tg")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


@pytest.mark.parametrize(
    ("flags", "state_dir", "expected"),
    [
        (
            ("--state-dir", "/proc/forbidden/st"),
            None,
            "--state-dir /proc/forbidden/st: cannot create or write in /proc (",
        ),
        ((), "~/st", "invalid setting: BT_SYNC_STATE_DIR: '~/st' starts with ~"),
    ],
)
def test_a_dry_run_refuses_the_state_directory_the_push_it_rehearses_would(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    state_dir: str | None,
    expected: str,
) -> None:
    # It passed, and the push it rehearsed then failed on its configuration.
    path = write_csv(tmp_path / "data.csv", 3)
    env = {"BT_SYNC_STATE_DIR": state_dir} if state_dir else {}
    done = cli_in_process(
        capfd, "push", str(path), "--project", "p", "--dataset", "d", "--dry-run", *flags, env=env
    )
    assert (done.returncode, done.stdout) == (2, "") and done.stderr.startswith(f"bt-sync: error: {expected}")


@pytest.mark.parametrize(("flag", "value"), [("--timeout", "nan"), ("--timeout", "0")])
def test_a_dry_run_refuses_the_api_settings_the_push_it_rehearses_would(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    path = write_csv(tmp_path / "data.csv", 3)
    rejects = tmp_path / "rejects.jsonl"
    args = (str(path), "--project", "p", "--dataset", "d", "--dry-run", flag, value)
    code, out, err = run_cli(
        emulator, tmp_path, capsys, *args, "--on-error", "skip", "--rejects", str(rejects)
    )
    assert (code, out) == (2, "") and err.startswith(f"bt-sync: error: invalid setting: {flag}: ")
    assert not rejects.exists()
    # From the environment too, as the push reads it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BT_SYNC_TIMEOUT", value)
        code, _, err = run_cli(emulator, tmp_path, capsys, *args[:-2])
    assert (code, err.startswith("bt-sync: error: invalid setting: BT_SYNC_TIMEOUT: ")) == (2, True)
