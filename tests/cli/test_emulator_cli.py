"""`bt-sync emulator`: the local API as a user starts it, on the port it says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import CLI, run_cli


def test_a_free_port_is_announced_as_the_port_it_listens_on_and_a_taken_one_named() -> None:
    served = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--seed", "empty", "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stdout is not None
        announced = re.search(r"on (http://127\.0\.0\.1:(\d+)) ", served.stdout.readline())
        assert announced is not None and announced[2] != "0"
        request = urllib.request.Request(f"{announced[1]}/v1/project", headers={"Authorization": "Bearer k"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == {"objects": []}
        # A second one on that port: the system's reason named neither host nor port.
        taken = run_cli("emulator", "--port", announced[2], "--seed", "empty")
        in_use = f"bt-sync: error: Address already in use: 127.0.0.1:{announced[2]}\n"
        assert (taken.returncode, taken.stderr) == (1, in_use)
    finally:
        served.terminate()
        served.wait(timeout=10)


def test_a_state_directory_holding_data_is_announced_as_served_in_place_of_the_seed(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def announced(seed: str) -> str:
        served = subprocess.Popen(
            [*CLI, "emulator", "--port", "0", "--seed", seed, "--state", str(state), "--api-key", "k"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert served.stdout is not None
            return re.sub(r"http://\S+", "URL", served.stdout.readline().strip())
        finally:
            served.terminate()
            served.wait(timeout=10)

    said = "; clients authenticate with its API key."
    assert announced("demo") == f"Braintrust emulator on URL (seed=demo){said}"
    # It said "seed=empty" and served the demo projects the state held.
    assert announced("empty") == f"Braintrust emulator on URL (the data in {state}, not --seed empty){said}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "nope"], "bt-sync: error: --seed: unknown seed 'nope': use empty, demo or bench:N"),
        (
            ["--seed", "bench:-5"],
            "bt-sync: error: --seed: unknown seed 'bench:-5': use empty, demo or bench:N",
        ),
        (["--port", "70000"], "Invalid value for '--port'"),
        # A key no client can send in its header: every request would be refused.
        (["--api-key", "k\nk2"], "--api-key: holds a control character (at position 2 of 4)"),
        (["--api-key", "clé"], "invalid setting: --api-key: holds a non-ASCII character"),
    ],
)
def test_a_bad_flag_is_one_line_not_a_traceback(args: list[str], message: str) -> None:
    done = run_cli("emulator", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert "k2" not in done.stderr and "clé" not in done.stderr


def test_a_key_variable_ending_in_a_line_break_is_the_key_clients_send() -> None:
    # `BRAINTRUST_API_KEY=$(cat key)` keeps no line break, but an env file read as is does.
    served = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--seed", "empty"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BRAINTRUST_API_KEY": "k\r\n"},
    )
    try:
        assert served.stdout is not None
        announced = re.search(r"on (http://127\.0\.0\.1:\d+) ", served.stdout.readline())
        assert announced is not None
        projects = run_cli("projects", "--api-url", announced[1], "--api-key", "k", "--json")
        assert projects.returncode == 0, projects.stderr
        assert json.loads(projects.stdout) == []
    finally:
        served.terminate()
        served.wait(timeout=10)


def test_a_state_directory_another_emulator_serves_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--seed", "demo", "--state", str(state), "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None and "seed=demo" in first.stdout.readline()
        journal = (state / "journal.jsonl").read_bytes()
        # It served the data as of its start and appended its own writes to the first one's journal,
        # neither seeing the other's.
        second = run_cli("emulator", "--port", "0", "--state", str(state), "--api-key", "k", timeout=30)
        refused = f"--state: another emulator is serving {state}: stop it, or give another directory"
        assert (second.returncode, second.stdout, second.stderr) == (2, "", f"bt-sync: error: {refused}\n")
        assert (state / "journal.jsonl").read_bytes() == journal
    finally:
        first.terminate()
        first.wait(timeout=10)


@pytest.mark.parametrize("lines", [b'{"a": 1}\n{"b": 2}\n', b"hello\nworld\n"])
def test_a_state_directory_holding_another_program_s_journal_is_refused_and_left_alone(
    tmp_path: Path, lines: bytes
) -> None:
    # Its lines were skipped as torn records (one warning quoting only `'op'`), the seed loaded, and the
    # seed's records appended to the file.
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(lines)
    done = run_cli("emulator", "--port", "0", "--state", str(tmp_path), "--api-key", "k", timeout=30)
    refused = f"--state: {journal} holds no record the emulator wrote: give a directory of its own"
    assert (done.returncode, done.stdout, done.stderr.splitlines()[-1]) == (
        2,
        "",
        f"bt-sync: error: {refused}",
    )
    assert "it has no 'op'" in done.stderr or "unreadable line 2" in done.stderr
    assert journal.read_bytes() == lines


def test_a_state_directory_where_no_lock_can_be_made_says_why(tmp_path: Path) -> None:
    # filelock takes a failure to make its file for a lock another holds: "another emulator is serving".
    (tmp_path / ".emulator.lock").mkdir()
    done = run_cli("emulator", "--port", "0", "--state", str(tmp_path), "--api-key", "k", timeout=30)
    assert (done.returncode, done.stderr) == (
        1,
        f"bt-sync: error: Is a directory: {tmp_path}/.emulator.lock\n",
    )


@pytest.mark.parametrize(
    ("state", "said"),
    [("f.csv", "f.csv is not a directory"), ("/proc/forbidden/x", "cannot create or write in /proc (")],
)
def test_a_state_directory_that_cannot_be_one_is_refused_naming_the_flag(
    tmp_path: Path, state: str, said: str
) -> None:
    # `f.csv is a file where a directory is needed` and `Operation not permitted: /sys/x`, exit 1.
    (tmp_path / "f.csv").touch()
    done = run_cli("emulator", "--port", "0", "--state", state, "--api-key", "k", timeout=30, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(f"bt-sync: error: --state {state}: {said}")


@pytest.mark.parametrize("holding", [["notes.txt"], ["a", "b", "c", "d"]])
def test_a_state_directory_of_another_programs_files_without_a_journal_is_refused_untouched(
    tmp_path: Path, holding: list[str]
) -> None:
    # The seed was loaded and its journal (1.2 MB) and lock written among a project's files.
    for name in holding:
        (tmp_path / name).write_text("mine\n")
    done = run_cli("emulator", "--port", "0", "--state", str(tmp_path), "--api-key", "k", timeout=30)
    shown = ", ".join(holding[:3]) + (", …" if len(holding) > 3 else "")
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: --state: {tmp_path} holds files the emulator did not write ({shown}) and no "
        "journal: give a directory of its own, a new or empty one\n",
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == holding


def test_a_fresh_volume_s_lost_and_found_or_hidden_files_are_no_other_program_s(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"")
    served = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--seed", "empty", "--state", str(tmp_path), "--api-key", "k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stdout is not None and "seed=empty" in served.stdout.readline()
    finally:
        served.terminate()
        served.wait(timeout=10)


def test_an_ipv6_loopback_address_is_served_and_announced_as_a_url() -> None:
    # "Name or service not known", exit 1: the server's socket was IPv4's.
    served = subprocess.Popen(
        [*CLI, "emulator", "--host", "::1", "--port", "0", "--seed", "empty", "--api-key", "k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stdout is not None
        announced = re.search(r"on (http://\[::1\]:\d+) ", served.stdout.readline())
        assert announced is not None
        projects = run_cli("projects", "--api-url", announced[1], "--api-key", "k", "--json")
        assert (projects.returncode, json.loads(projects.stdout)) == (0, [])
    finally:
        served.terminate()
        _, err = served.communicate(timeout=10)
    assert "warning" not in err  # loopback, with the default key or not


def test_an_address_that_cannot_be_served_is_not_warned_of_as_reachable() -> None:
    # Called "reachable from other machines", then "Name or service not known".
    env = {key: value for key, value in os.environ.items() if key != "BRAINTRUST_API_KEY"}
    done = run_cli("emulator", "--host", "999.1.1.1", "--port", "0", "--seed", "empty", env=env, timeout=30)
    assert (done.returncode, done.stderr) == (1, "bt-sync: error: Name or service not known: 999.1.1.1:0\n")


def test_every_interface_with_the_default_key_is_warned_of() -> None:
    served = subprocess.Popen(
        [*CLI, "emulator", "--host", "0.0.0.0", "--port", "0", "--seed", "empty"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "BRAINTRUST_API_KEY"},
    )
    try:
        assert served.stdout is not None and "Braintrust emulator on" in served.stdout.readline()
    finally:
        served.terminate()
        _, err = served.communicate(timeout=10)
    assert err.startswith(
        "bt-sync: warning: --host 0.0.0.0 is reachable from other machines, and the emulator takes the "
        "well-known default key"
    )
