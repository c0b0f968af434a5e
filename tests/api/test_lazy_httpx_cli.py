"""httpx's command line is left unimported by bt-sync, and still runs when called."""

from __future__ import annotations

import subprocess
import sys

CALL_HTTPX_MAIN = """
import sys
import connector.api.client
import httpx
print(sorted({"click", "rich", "pygments"} & {name.split(".")[0] for name in sys.modules}))
sys.argv = ["httpx", "--help"]
httpx.main()
"""


def test_the_client_imports_httpx_without_its_command_line_which_still_runs_when_called() -> None:
    done = subprocess.run([sys.executable, "-c", CALL_HTTPX_MAIN], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unimported, usage = done.stdout.split("\n", 1)
    assert unimported == "[]"
    assert "Usage: httpx <URL> [OPTIONS]" in usage
