# iotml — the commands a newcomer types. Each target sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test check bench bench-soak clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "iotml needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[mqtt,api]"
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.core

demo: $(VENV)/.core  ## a simulated fleet through a live server for a minute (embedded broker and DuckDB)
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
	$(BIN)/python benchmarks/bench_ingest.py throughput --runs 3 --breakdown --json benchmarks/results/ingest-throughput.json
	$(BIN)/python benchmarks/bench_ingest.py latency --rate 5000 --per-message 100 --seconds 60 --json benchmarks/results/ingest-latency.json
	OMP_NUM_THREADS=1 $(ONE_CORE) $(BIN)/python benchmarks/bench_anomaly_speed.py --repeats 5 --json benchmarks/results/anomaly-speed.json
	$(BIN)/python benchmarks/bench_anomaly_quality.py all --hindsight --json benchmarks/results/anomaly-quality.json

bench-soak: $(VENV)/.dev  ## live ingestion for 10 minutes at a steady rate: RSS growth (issue 3)
	@mkdir -p benchmarks/results
	$(BIN)/python benchmarks/bench_ingest.py soak --minutes 10 --rate 5000 --per-message 100 --json benchmarks/results/ingest-soak.json

clean:
	rm -rf $(VENV) iotml-data .pytest_cache .mypy_cache .ruff_cache
