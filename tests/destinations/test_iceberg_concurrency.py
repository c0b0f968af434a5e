"""Four worker processes syncing into one Iceberg warehouse (PostgreSQL catalog, S3 store), a fifth reading.

The workers share only the catalog and the object store: each has its own state directory. Their
commits to the same tables conflict and are retried; the result equals a single-process sync.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from connector.destinations.iceberg_catalog import ensure_namespace, open_catalog
from connector.emulator import Emulator
from connector.wiring import open_destination
from tests.helpers import (
    CLI,
    all_tables,
    cli_warehouse_args,
    free_port,
    iceberg_in,
    run_cli,
    sync,
    synced_keys,
    upstream_keys,
    warehouse_in,
)

WORKERS = 4
# Each read is a new `bt-sync sql` process (2-3 s of imports, then every table loaded over S3). Back to
# back they kept a core of the two busy and slowed the four workers by half again or more; a pause
# between reads still has them over the whole of the workers' commits, a few reads per run.
READ_PAUSE_S = 2.0
# Reads begun while the workers run, at the least: one alone could come before their first commit.
MIN_READS = 2


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster from the Debian binaries; its SQLAlchemy URI (psycopg 3)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL server binaries are missing: apt-get install postgresql"
    binaries = Path(found[-1]).parent
    # Not under pytest's temporary directory, which only root may enter.
    directory = Path(tempfile.mkdtemp(prefix="bt-sync-postgres-"))
    # PostgreSQL refuses to run as root: run it as the postgres user, which owns its directory.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(directory, "postgres")
    port = free_port()
    pg_ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(directory / "data")]
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*pg_ctl, "-o", options, "-l", str(directory / "log"), "-w", "start"], check=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    """A bucket on a local S3-compatible server; the standard AWS variables point at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    settings = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    pafs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{port}", allow_bucket_creation=True).create_dir(
        "lake"
    )
    yield "s3://lake"
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


def test_four_workers_on_other_state_dirs_converge_to_one_sync_while_a_reader_reads(
    emulator: Emulator, tmp_path: Path, postgres: str, s3_bucket: str
) -> None:
    projects = [emulator.store.create_project(f"team-{n}") for n in range(WORKERS)]
    for project in projects:
        emulator.store.generate_logs(project["id"], 300, update_fraction=0.05)
        experiment = emulator.store.create_experiment(project["id"], "eval")
        emulator.store.insert(
            "experiment", experiment["id"], [{"id": f"case-{i}", "input": i} for i in range(20)]
        )
    shared = iceberg_in(tmp_path, "shared", catalog=postgres, warehouse=f"{s3_bucket}/warehouse")
    open_destination(shared)  # the tables exist before the reader starts
    workers = [
        subprocess.Popen(
            [*CLI, "sync", "--api-url", emulator.url, "--project", project["name"], "--json",
             *cli_warehouse_args(shared.model_copy(update={"state_dir": tmp_path / f"worker-{n}"}))],
            env={**os.environ, "BRAINTRUST_API_KEY": emulator.api_key},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, project in enumerate(projects)
    ]  # fmt: skip
    reads: list[tuple[int, str]] = []
    workers_done = threading.Event()

    def read_while_workers_run() -> None:
        while not workers_done.wait(READ_PAUSE_S):
            done = run_cli(
                "sql", "SELECT count(*) - count(DISTINCT (project_id, id)) FROM project_logs",
                *cli_warehouse_args(shared)[:-2],
            )  # fmt: skip
            reads.append((done.returncode, done.stdout + done.stderr))

    reader = threading.Thread(target=read_while_workers_run)
    reader.start()
    outputs = [worker.communicate(timeout=240) for worker in workers]
    workers_done.set()
    reader.join()
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    # The reader never failed and never saw two versions of a row, in reads begun while the workers ran.
    assert len(reads) >= MIN_READS, reads
    assert all(code == 0 and out.splitlines()[-1] == "0" for code, out in reads), reads
    # Quiet runs: pyiceberg's warnings of the commit conflicts it retried are not shown.
    assert not [
        line for _, stderr in outputs for line in stderr.splitlines() if not line.startswith("bt-sync: ")
    ]
    # The reference: one sync in this process, into a local warehouse (test_iceberg.py shows both
    # destinations hold the same tables), where an Iceberg one cost 11 s of this test's 48. The shared
    # warehouse equals it row for row, so it equals upstream when the reference does: the upstream
    # comparison reads the local files, not the shared ones again through S3 (a second or two).
    single = warehouse_in(tmp_path, "single")
    sync(emulator, single)
    assert synced_keys(single) == upstream_keys(emulator)
    assert all_tables(shared) == all_tables(single)


@pytest.mark.parametrize("attempt", range(2))
def test_workers_opening_a_new_sql_catalog_at_one_moment_all_get_it(tmp_path: Path, attempt: int) -> None:
    uri, warehouse = f"sqlite:///{tmp_path}/catalog.db", str(tmp_path / "warehouse")
    workers = 6
    start = threading.Barrier(workers)
    failures: list[Exception] = []

    def open_with_namespace() -> None:
        start.wait()
        try:
            ensure_namespace(open_catalog(uri, warehouse), "braintrust")
        except Exception as error:  # what a worker would have died of
            failures.append(error)

    threads = [threading.Thread(target=open_with_namespace) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert open_catalog(uri, warehouse).list_namespaces() == [("braintrust",)]
