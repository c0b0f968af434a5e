# Each target sets itself up on a fresh machine: a local .venv with uv, then the work.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKSUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(CHECKSUM)
BENCH_STAMP := $(VENV)/.bench-installed-$(CHECKSUM)

.PHONY: demo test lint bench install mutants bytecode

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The editable install leaves bt-sync's own modules uncompiled, and where PYTHONDONTWRITEBYTECODE is
# set (as on this project's machines) every command would compile them again: 0.3 s a run.
# compileall skips modules already compiled, so this costs next to nothing when nothing changed.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 connector schemas pipelines benchmarks

demo: bytecode
	$(BIN)/bt-sync demo

test: bytecode
	$(BIN)/ruff check connector schemas pipelines tests benchmarks
	$(BIN)/ruff format --check connector schemas pipelines tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2

# The peers the benchmarks compare with (dlt, the braintrust SDK), installed once per pyproject.toml.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e ".[dev,bench]"
	rm -f $(VENV)/.bench-installed-* && touch $(BENCH_STAMP)

bench: bytecode $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

# Mutation testing of the guarantee-carrying code (about an hour on two cores; never in CI).
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants run
