# Each target sets itself up on a fresh machine: a local .venv with uv, then the work.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench install mutants

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bt-sync demo

test: $(STAMP)
	$(BIN)/ruff check connector schemas pipelines tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run

# Mutation testing of the guarantee-carrying code (about an hour on two cores; never in CI).
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants run
