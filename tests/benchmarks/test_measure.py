"""The launcher every benchmark case runs under: it reports the command's own cost, not its parent's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ALLOCATE_AND_SPIN = """
import sys, time
block = bytearray(int(sys.argv[1]) * 2**20)
for i in range(0, len(block), 4096):  # touch every page: only touched pages are resident
    block[i] = 1
deadline = time.process_time() + float(sys.argv[2])
while time.process_time() < deadline:
    pass
print("done")
"""


def launch(tmp_path: Path, *command: str) -> tuple[dict[str, Any], str]:
    """Run `command` under `python -m benchmarks.measure`, as the benchmark runner does."""
    result, output = tmp_path / "measured.json", tmp_path / "out.txt"
    launcher = [sys.executable, "-m", "benchmarks.measure", str(result), str(output), "--"]
    subprocess.run([*launcher, *command], check=True)
    return json.loads(result.read_text()), output.read_text()


def test_a_command_s_peak_memory_and_cpu_are_its_own(tmp_path: Path) -> None:
    big, printed = launch(tmp_path, sys.executable, "-c", ALLOCATE_AND_SPIN, "300", "0.5")
    small, _ = launch(tmp_path, sys.executable, "-c", ALLOCATE_AND_SPIN, "10", "0.1")
    assert big["returncode"] == small["returncode"] == 0 and printed == "done\n"
    assert 300 <= big["rss_peak_mb"] < 400 and small["rss_peak_mb"] < 100
    assert 0.5 <= big["cpu_s"] < 1.5 and big["wall_s"] >= 0.9 * big["cpu_s"]
    assert small["cpu_s"] < big["cpu_s"]


def test_the_memory_of_the_process_starting_the_launcher_does_not_count(tmp_path: Path) -> None:
    # This process holds 400 MB more: a command it started directly would report that as its peak.
    ballast = bytearray(400 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    measured, _ = launch(tmp_path, sys.executable, "-c", "pass")
    assert measured["returncode"] == 0 and measured["rss_peak_mb"] < 100
    del ballast


def test_a_failing_command_reports_its_exit_status(tmp_path: Path) -> None:
    result, output = tmp_path / "measured.json", tmp_path / "out.txt"
    launcher = [sys.executable, "-m", "benchmarks.measure", str(result), str(output), "--"]
    subprocess.run([*launcher, sys.executable, "-c", "raise SystemExit(3)"], check=True)
    assert json.loads(result.read_text())["returncode"] == 3
