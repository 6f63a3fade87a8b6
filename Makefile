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

bench: $(VENV)/.dev  ## the performance benchmarks; results belong in BENCHMARKS.md
	$(BIN)/python benchmarks/bench_senml.py
	$(BIN)/python benchmarks/bench_store.py

clean:
	rm -rf $(VENV) iotml-data .pytest_cache .mypy_cache .ruff_cache
