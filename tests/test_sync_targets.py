"""Sync edge cases: object-store Parquet, schema drift, concurrent syncs, CLI behaviour."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from connector.emulator import Emulator, FaultRule
from tests.support import CLI, all_tables, run_cli, sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


def test_parquet_on_an_s3_compatible_store(demo_emulator: Emulator, tmp_path: Path, s3_endpoint: str) -> None:
    fs = pafs.S3FileSystem(
        access_key="test",
        secret_key="test",
        endpoint_override=s3_endpoint,
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir("warehouse")
    uri = f"s3://test:test@warehouse/bt?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    db = tmp_path / "w.duckdb"
    sync(demo_emulator, db, parquet=uri)
    for table, key in (("project_logs", "project_id"), ("dataset_records", "dataset_id")):
        dataset = ds.dataset(f"warehouse/bt/{table}", filesystem=fs, format="parquet", partitioning="hive")
        from_store = dataset.to_table(columns=[key, "id", "_xact_id"]).to_pylist()
        with duckdb.connect(str(db), read_only=True) as con:
            expected = con.execute(f"SELECT {key}, id, _xact_id FROM {table}").fetchall()
        assert sorted((r[key], r["id"], r["_xact_id"]) for r in from_store) == sorted(expected)
        assert expected


def test_schema_drift_keeps_syncing_and_keeps_the_data(emulator: Emulator, tmp_path: Path) -> None:
    project = emulator.store.create_project("drift")
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "a", "scores": {"acc": 0.5}, "metadata": {"k": 1}}]
    )
    db = tmp_path / "w.duckdb"
    sync(emulator, db)
    emulator.store.insert(
        "project_logs",
        project["id"],
        [
            {"id": "b", "scores": {"acc": None}, "metadata": {"k": "text"}, "brand_new_field": {"x": [1, 2]}},
            {"id": "c", "scores": {"acc": 1}, "metadata": {"k": [1, "mixed"]}},
        ],
    )
    sync(emulator, db)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(
            (row[0], row[1:])
            for row in con.execute(
                "SELECT id, scores, metadata->>'$.k', _extra->'$.brand_new_field' FROM project_logs"
            ).fetchall()
        )
    assert rows["a"][:2] == ({"acc": 0.5}, "1")
    assert rows["b"][:3] == ({"acc": None}, "text", '{"x":[1,2]}')
    assert rows["c"] == ({"acc": 1.0}, '[1,"mixed"]', None)


def test_two_concurrent_syncs_on_one_file_do_not_corrupt_it(demo_emulator: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sync(demo_emulator, db, parquet=tmp_path / "pq")
        except BaseException as error:
            errors.append(error)

    env = {**os.environ, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    other = subprocess.Popen(
        [
            *CLI,
            "sync",
            "--api-url",
            demo_emulator.url,
            "--duckdb",
            str(db),
            "--parquet",
            str(tmp_path / "pq"),
            "--json",
            "--overlap-seconds",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    _, stderr = other.communicate(timeout=120)
    assert other.returncode == 0, stderr.decode()
    assert not errors
    sync(demo_emulator, tmp_path / "reference.duckdb", full=True)
    assert all_tables(db) == all_tables(tmp_path / "reference.duckdb")


def test_cli_sync_json_summary_and_status(demo_emulator: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    done = run_cli(
        "sync", "--api-url", demo_emulator.url, "--duckdb", str(db), "--no-parquet", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    assert '"objects"' in done.stdout
    status = run_cli("status", "--duckdb", str(db), "--json")
    assert status.returncode == 0 and '"version"' in status.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["sync", "--api-url", "{url}", "--duckdb", "{db}"],
            {"BRAINTRUST_API_KEY": "wrong"},
            "rejected the API key",
        ),
        (
            ["sync", "--api-url", "{url}", "--duckdb", "{db}"],
            {"BRAINTRUST_API_KEY": ""},
            "No Braintrust API key",
        ),
        (["sync", "--api-url", "ftp://x", "--duckdb", "{db}"], {}, "api_url"),
        (["sync", "--api-url", "{url}", "--duckdb", "{db}", "--objects", "logz"], {}, "--objects"),
        (["sync", "--api-url", "{url}", "--duckdb", "{db}", "--project", "nope"], {}, "no project named"),
        (
            ["sync", "--api-url", "{url}", "--duckdb", "/proc/forbidden/w.duckdb"],
            {},
            "cannot create the directory",
        ),
        (["sync", "--api-url", "{url}", "--duckdb", "{corrupt}"], {}, "corrupt"),
        (["sync", "--api-url", "http://127.0.0.1:9", "--duckdb", "{db}"], {}, "unavailable"),
        (["status", "--duckdb", "{db}"], {}, "does not exist yet"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(
    demo_emulator: Emulator, tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"this is not a duckdb file" * 100)
    values = {"url": demo_emulator.url, "db": str(tmp_path / "w.duckdb"), "corrupt": str(corrupt)}
    full_env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "BT_SYNC_PARQUET": str(tmp_path / "pq")} | env
    done = run_cli(*(a.format(**values) for a in args), env=full_env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stderr
    assert demo_emulator.api_key not in done.stderr + done.stdout


def test_injected_faults_during_sync_still_converge(demo_emulator: Emulator, tmp_path: Path) -> None:
    for rule in (
        FaultRule(kind="status", route="/fetch", status=429, retry_after="0", times=2),
        FaultRule(kind="status", route="/fetch", status=503, times=2, after=3),
        FaultRule(kind="drop", route="/fetch", times=1, after=5),
        FaultRule(kind="truncate", route="/fetch", times=1, after=7),
    ):
        demo_emulator.faults.add(rule)
    summary = sync(demo_emulator, tmp_path / "w.duckdb")
    assert summary.retries >= 6
    sync(demo_emulator, tmp_path / "reference.duckdb")
    assert all_tables(tmp_path / "w.duckdb") == all_tables(tmp_path / "reference.duckdb")
