"""`python -m connector.cli`: the same as the `bt-sync` command (which loads the package first, though)."""

from connector.console import run

run()
