"""`python -m connector.cli`: the same as the `bt-sync` command."""

from connector.cli import run

run()
