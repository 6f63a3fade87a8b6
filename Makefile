# iotml — the commands a newcomer types. Each target sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test check bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "iotml needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.core

demo: $(VENV)/.core  ## generate a fleet history, import it, analyse it (embedded DuckDB, nothing to install)
	$(BIN)/iotml demo

test: $(VENV)/.dev   ## the full test suite, doctests included, warnings as errors
	$(BIN)/python -m pytest

check: $(VENV)/.dev  ## formatting, lint, strict typing
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

ONE_CORE := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)

bench: $(VENV)/.dev  ## the performance benchmarks (minutes); results belong in BENCHMARKS.md
	@mkdir -p benchmarks/results
	$(ONE_CORE) $(BIN)/python benchmarks/bench_senml.py --packs 300 --repeats 7 --json benchmarks/results/senml.json
	$(BIN)/python benchmarks/bench_store.py --runs 3 --json benchmarks/results/store.json

clean:
	rm -rf $(VENV) iotml-data .pytest_cache .mypy_cache .ruff_cache
