# Every target creates .venv on first use, so `make test` and `make demo` work on a
# fresh machine that has nothing but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000

.PHONY: install test lint typecheck pytest demo bench bench-quick conformance soak soak-cluster clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict cachemw

# The dashboard's browser test needs Debian's Chromium; without root it skips, in CI it fails.
pytest: $(STAMP)
	-sh demo_app/ensure_chromium.sh
	$(BIN)/python -m pytest

test: lint typecheck pytest

demo: $(STAMP)
	PORT=$(PORT) $(BIN)/python -m demo_app

bench: $(STAMP)
	sh bench/ensure_wrk.sh
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	sh bench/ensure_wrk.sh
	$(BIN)/python -m bench --quick

# The public http-cache-tests suite (npm) against a proxy wrapped in CacheMiddleware;
# writes bench/CONFORMANCE.md. Needs node and npm.
conformance: $(STAMP)
	$(BIN)/python -m bench.conformance

# Two uvicorn workers with every feature on, a mixed load, Valkey restarted midway; writes
# bench/SOAK.md. Not part of `make test`. 60 s by default (SOAK_SECONDS=N to change).
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(if $(SOAK_SECONDS),--seconds $(SOAK_SECONDS))

soak-cluster: $(STAMP)
	$(BIN)/python -m bench.soak --cluster $(if $(SOAK_SECONDS),--seconds $(SOAK_SECONDS))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
