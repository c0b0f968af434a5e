"""Every fault during a push, and random SIGKILLs: each row lands exactly once, validating first or not."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import PushError, ServerUnavailable
from connector.progress import NullProgress
from connector.push.checkpoint import PushCheckpoint
from connector.push.run import INTERRUPTED_WAIT_S, PushOptions, push_file
from tests.helpers import RETRIED_FAULTS
from tests.push.helpers import CSV_AS_EVENTS, acked_batches, push_process, run_cli, same_rows, write_csv

# Every fault the emulator can inject, and the two that only writes meet.
FAULTS = [
    *RETRIED_FAULTS,
    FaultRule(kind="status", status=413),
    FaultRule(kind="drop_after_apply"),
]

PUSH_ROWS = 400


def pushed_exactly_once(emulator: Emulator, dataset: str, path: Path, tmp_path: Path) -> None:
    (found,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name=dataset))
    live = emulator.store.live_rows("dataset", found["id"])
    same_rows(live, CSV_AS_EVENTS.format(path=path), tmp_path)


@pytest.mark.parametrize("validate_first", [True, False], ids=["validate-first", "send-as-checked"])
@pytest.mark.parametrize("position", [0, 4])
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.kind}-{f.status}")
def test_a_fault_anywhere_in_a_push_loses_and_duplicates_nothing(
    emulator: Emulator, tmp_path: Path, fault: FaultRule, position: int, validate_first: bool
) -> None:
    """12 faults x 2 positions x 2 ways = 48 scenarios, each ending with exactly the file's rows once."""
    dataset = f"faults-{fault.kind}-{fault.status}-{position}-{validate_first}"
    path = write_csv(tmp_path / "data.csv", PUSH_ROWS)
    emulator.faults.clear()
    emulator.faults.add(replace(fault, route="/insert", after=position, times=2))
    settings = ApiSettings(
        api_url=emulator.url, api_key=emulator.api_key, backoff_initial_s=0.01, timeout_s=1.0
    )
    with BraintrustClient(settings) as client:
        options = PushOptions(
            file=path,
            project="p",
            dataset=dataset,
            batch_rows=40,
            validate_first=validate_first,
            state_dir=tmp_path / "s",
        )
        summary = push_file(client, options, NullProgress())
    emulator.faults.clear()
    assert summary.rows_sent == PUSH_ROWS
    assert summary.retries + summary.splits >= 1  # the fault fired and was survived
    pushed_exactly_once(emulator, dataset, path, tmp_path)


# Each kill costs two process starts (about 2.5 s). The kill lands while the batches after those
# acked are in flight (inserts are slowed), at the first ack (the simplest value, which hypothesis
# tries first) and at random ones up to two thirds of the way (of 60 batches). No kill before the first
# ack: waiting for none, it landed before the process had started, and the rerun was a fresh push.
@pytest.mark.parametrize("way", [(), ("--no-validate-first",)], ids=["validate-first", "send-as-checked"])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after_batches=st.integers(min_value=1, max_value=40))
def test_push_sigkill_at_random_points_then_rerun_has_each_row_once(
    emulator: Emulator,
    tmp_path_factory: pytest.TempPathFactory,
    kill_after_batches: int,
    way: tuple[str, ...],
) -> None:
    work = tmp_path_factory.mktemp("push-killed")
    dataset = work.name
    path = write_csv(work / "data.csv", 1_500)
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.02, times=None))
    victim = push_process(emulator, path, work / "state", "--dataset", dataset, "--batch-rows", "25", *way)
    deadline = time.monotonic() + 60
    while (
        acked_batches(work / "state") < kill_after_batches
        and victim.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the push finished before the kill landed"
    emulator.faults.clear()
    rerun = push_process(emulator, path, work / "state", "--dataset", dataset, "--batch-rows", "25", *way)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    pushed_exactly_once(emulator, dataset, path, work)


@pytest.mark.parametrize(
    ("method", "route", "field"),
    [("POST", "^/v1/dataset$", "id"), ("POST", "/insert$", "row_ids")],
    ids=["dataset created", "batch inserted"],
)
def test_a_response_breaking_the_api_contract_is_one_line_naming_the_request(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    route: str,
    field: str,
) -> None:
    emulator.faults.add(FaultRule(kind="body", route=route, method=method, body='{"weird": 1}'))
    code, out, err = run_cli(
        emulator,
        tmp_path,
        capsys,
        str(write_csv(tmp_path / "rows.csv", 3)),
        "--project",
        "p",
        "--dataset",
        "d",
    )
    assert (code, out) == (1, "")
    assert err.startswith(f"bt-sync: error: {method} /v1/")
    assert (
        f"returned a response bt-sync cannot read ({field}: Field required); is the API URL a Braintrust"
        in err
    )
    assert err.count("\n") == 1


def test_a_row_the_api_refuses_is_found_by_halving_and_named(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path
) -> None:
    # A line sent as written, with a number the API cannot read as a double: the checks let it through.
    lines = [f'{{"id": "r{n}", "input": {n}}}' for n in range(1, 31)]
    lines[16] = '{"id": "r17", "input": 1e400}'
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    options = PushOptions(
        file=path, project="p", dataset="d", batch_rows=10, concurrency=1, state_dir=tmp_path / "state"
    )
    with pytest.raises(PushError) as error:
        push_file(push_client, options, NullProgress())
    assert str(error.value).startswith("data.jsonl row 17: the API refused the row even when sent alone (")
    assert "number is infinity" in str(error.value)
    # Rows 11-16, halves of row 17's batch the API took, landed too: the message said 10 rows were sent.
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    assert len(emulator.store.live_rows("dataset", dataset["id"])) == 16
    assert (
        "(10 rows were sent and are checkpointed, and rows of that row's batch may have reached the dataset "
        "too: the same file pushed again resumes after them"
    ) in str(error.value)

    lines[16] = '{"id": "r17", "input": 17}'
    path.write_text("\n".join(lines) + "\n")
    push_file(push_client, options, NullProgress())
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    stored = {row["id"]: row["input"] for row in emulator.store.live_rows("dataset", dataset["id"])}
    assert stored == {f"r{n}": n for n in range(1, 31)}


def skipping_push(tmp_path: Path, refused: dict[int, str], **options: Any) -> PushOptions:
    """`--on-error skip` options pushing 30 JSON lines `r1`..`r30`, the lines `refused` (by row) in theirs.

    The checks let those lines through (sent as written); the API refuses them.
    """
    lines = [f'{{"id": "r{n}", "input": {n}}}' for n in range(1, 31)]
    for row, line in refused.items():
        lines[row - 1] = line
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return PushOptions(
        file=path,
        project="p",
        dataset="d",
        batch_rows=10,
        state_dir=tmp_path / "state",
        on_error="skip",
        rejects=tmp_path / "rejects.jsonl",
        **options,
    )


@pytest.mark.parametrize("validate_first", [True, False])
def test_with_on_error_skip_rows_the_api_refuses_go_to_the_rejects_file_and_the_rest_is_sent(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path, validate_first: bool
) -> None:
    refused = {17: '{"id": "r17", "input": 1e400}', 30: '{"id": "r30", "input": {"deep": -1e999}}'}
    options = skipping_push(tmp_path, refused, validate_first=validate_first)
    path, rejects = options.file, options.rejects
    assert rejects is not None
    summary = push_file(push_client, options, NullProgress())
    assert (summary.rows_sent, summary.rows_skipped, summary.rejects) == (28, 2, str(rejects))
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["file"], r["row"], r["column"], r["values"]) for r in records] == [
        (str(path), row, None, line) for row, line in refused.items()
    ]
    assert all(r["reason"].startswith("the API refused the row even when sent alone (") for r in records)
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    stored = {row["id"] for row in emulator.store.live_rows("dataset", dataset["id"])}
    assert stored == {f"r{n}" for n in range(1, 31)} - {"r17", "r30"}


def test_a_refused_row_that_replaced_earlier_rows_of_its_id_says_that_no_row_of_it_was_stored(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path
) -> None:
    # Rows 5 and 12 hold r17's id: only its last row, 17, is sent, and the API refuses it.
    refused = {
        5: '{"id": "r17", "input": 5}',
        12: '{"id": "r17", "input": 12}',
        17: '{"id": "r17", "input": 1e400}',
    }
    summary = push_file(push_client, skipping_push(tmp_path, refused), NullProgress())
    assert (summary.rows_sent, summary.rows_skipped, summary.rows_duplicate) == (27, 1, 2)
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    assert "r17" not in {row["id"] for row in emulator.store.live_rows("dataset", dataset["id"])}
    # The warning about the repeated id said the last row wins, and nothing said none did.
    assert summary.warnings[-1] == (
        "1 row of data.jsonl that the API refused (in the rejects file) had the same id as earlier rows, "
        'which were left out for them: no row of those ids was stored (e.g. id "r17", row 17); mend the '
        "refused rows and push the file again"
    )


def test_rows_the_api_refused_before_a_push_stopped_are_in_the_rejects_file_of_its_rerun(
    emulator: Emulator, push_client: BraintrustClient, tmp_path: Path
) -> None:
    options = skipping_push(
        tmp_path, {row: f'{{"id": "r{row}", "input": 1e400}}' for row in (5, 25)}, concurrency=1
    )
    rejects = options.rejects
    assert rejects is not None
    # Batch 0 takes 9 requests (row 5 is found by halving), batch 1 one; then the API is down.
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=503, after=10, times=None))
    with pytest.raises(ServerUnavailable):
        push_file(push_client, options, NullProgress())
    emulator.faults.clear()
    summary = push_file(push_client, options, NullProgress())
    # The rerun rewrites the rejects file: row 5 comes from the checkpoint, row 25 from its own sending.
    assert [json.loads(line)["row"] for line in rejects.read_text().splitlines()] == [5, 25]
    assert (summary.rows_resumed, summary.rows_sent, summary.rows_skipped) == (19, 9, 2)


def test_a_second_ctrl_c_before_any_acknowledgement_does_not_say_nothing_was_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    pushing = push_with_its_first_batch_in_flight(emulator, tmp_path, rows=50, delay_s=2)
    deadline = time.monotonic() + 60
    pushing.send_signal(signal.SIGINT)  # the push waits for the batch in flight...
    time.sleep(0.3)
    pushing.send_signal(signal.SIGINT)  # ...until told again
    _, err = pushing.communicate(timeout=60)
    assert pushing.returncode == 130, err.decode()
    (line,) = err.decode().replace("\r", "\n").strip().splitlines()[-1:]
    assert line == NOTHING_ACKNOWLEDGED
    # And the batch in flight did reach it.
    while sum(emulator.stats.rows_inserted.values()) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    assert len(emulator.store.live_rows("dataset", dataset["id"])) == 25


def inserts_asked(emulator: Emulator) -> int:
    return sum(n for (_, route), n in emulator.stats.requests.items() if route.endswith("insert"))


# What an interrupted push says when the batches in flight were never acknowledged.
NOTHING_ACKNOWLEDGED = (
    "bt-sync: interrupted: no batch was acknowledged, but those in flight may have reached the "
    "dataset: rerun the same command (rows are replaced by id, not duplicated)"
)


def push_with_its_first_batch_in_flight(
    emulator: Emulator, tmp_path: Path, *, rows: int, delay_s: float
) -> subprocess.Popen[bytes]:
    """A push of `rows` CSV rows, 25 a batch and one batch at a time, each insert answered after `delay_s`;
    returned once its first insert was asked for."""
    path = write_csv(tmp_path / "data.csv", rows)
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=delay_s, times=None))
    pushing = push_process(emulator, path, tmp_path / "state", "--batch-rows", "25", "--concurrency", "1")
    deadline = time.monotonic() + 60
    while not inserts_asked(emulator) and pushing.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    return pushing


def test_a_scheduler_s_sigterm_stops_a_push_waiting_on_the_api_within_seconds(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The first Ctrl-C waited for every batch in flight, however long: a scheduler's SIGKILL, 10-30 s
    # after its SIGTERM, then came before any word of what was checkpointed.
    pushing = push_with_its_first_batch_in_flight(emulator, tmp_path, rows=100, delay_s=60)
    stopped = time.monotonic()
    pushing.send_signal(signal.SIGTERM)
    _, err = pushing.communicate(timeout=60)
    assert time.monotonic() - stopped < INTERRUPTED_WAIT_S + 5
    assert pushing.returncode == 130, err.decode()
    assert err.decode().strip().splitlines()[-1] == NOTHING_ACKNOWLEDGED


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_right_after_a_batch_s_checkpoint_counts_that_batch(
    request: pytest.FixtureRequest,
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stop: signal.Signals,
) -> None:
    # The signal lands once the checkpoint of the second batch is saved, before the push counted its rows.
    real_ack = PushCheckpoint.ack

    def ack_then_stop(self: PushCheckpoint, batch: int, refused: Mapping[int, str]) -> None:
        real_ack(self, batch, refused)
        if batch == 1:
            signal.raise_signal(stop)

    monkeypatch.setattr(PushCheckpoint, "ack", ack_then_stop)
    if stop == signal.SIGTERM:  # `bt-sync` stops on it as at Ctrl-C (`connector.cli.run`)
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        request.addfinalizer(lambda: signal.signal(signal.SIGTERM, previous))
    path = write_csv(tmp_path / "data.csv", 100)
    args = (str(path), "--project", "p", "--dataset", "d", "--batch-rows", "25", "--concurrency", "1")
    code, _, err = run_cli(emulator, tmp_path, capsys, *args)
    assert (code, acked_batches(tmp_path / "state")) == (130, 2)
    assert err.endswith(
        "interrupted: 50 rows were acknowledged and are checkpointed: rerun the same command to send "
        "the rest\n"
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])  # SIGTERM, as a scheduler stops a job
def test_ctrl_c_says_what_was_sent_and_the_rerun_sends_the_rest(
    emulator: Emulator, tmp_path: Path, stop: signal.Signals
) -> None:
    path = write_csv(tmp_path / "data.csv", 1_500)
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.05, times=None))
    args = ("--batch-rows", "25", "--concurrency", "1")
    pushing = push_process(emulator, path, tmp_path / "state", *args)
    deadline = time.monotonic() + 60
    while acked_batches(tmp_path / "state") < 3 and pushing.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    pushing.send_signal(stop)
    _, err = pushing.communicate(timeout=60)
    assert pushing.returncode == 130, err.decode()
    (line,) = err.decode().replace("\r", "\n").strip().splitlines()[-1:]
    said = re.fullmatch(
        r"bt-sync: interrupted: (\d+) rows were acknowledged and are checkpointed: rerun the same "
        r"command to send the rest",
        line,
    )
    assert said is not None, line
    sent = acked_batches(tmp_path / "state") * 25
    assert int(said.group(1)) == sent
    emulator.faults.clear()
    rerun = push_process(emulator, path, tmp_path / "state", *args)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    assert f"; {sent:,} rows were already sent by an earlier run" in out.decode()
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p"))
    assert len(emulator.store.live_rows("dataset", dataset["id"])) == 1_500


def test_a_push_stopped_while_sending_still_says_its_ids_are_hashes(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Said only as a push ended: a push stopped after its first batches never told that those rows' ids are
    # hashes of their content.
    real_ack = PushCheckpoint.ack

    def ack_then_stop(self: PushCheckpoint, batch: int, refused: Mapping[int, str]) -> None:
        real_ack(self, batch, refused)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(PushCheckpoint, "ack", ack_then_stop)
    path = tmp_path / "no-ids.csv"
    path.write_text("input\n" + "".join(f"q{n}\n" for n in range(100)))
    args = (str(path), "--project", "p", "--dataset", "d", "--batch-rows", "25", "--concurrency", "1")
    code, _, err = run_cli(emulator, tmp_path, capsys, *args)
    warning, stopped = err.strip().splitlines()
    assert code == 130 and stopped.startswith("bt-sync: interrupted: 25 rows were acknowledged")
    assert warning.startswith("bt-sync: warning: no-ids.csv has no id column, so each row's id is a hash")
