# statsite: `make run` to try it, `make test` to prove it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# The PostgreSQL the suite also runs against (its test database is created beside it).
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core.
PYTEST_WORKERS ?= auto
# Benchmark scale: LLM calls in the generated PostgreSQL data set.
SCALE ?= 1000000

.PHONY: run install test test-sqlite test-postgres drills bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

## run: set up, migrate, load demo data on first run, print how to log in, serve.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py firstrun --host $(HOST) --port $(PORT)
	$(BIN)/uvicorn statsite.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) --lifespan off

## test: the whole suite, on SQLite and on PostgreSQL.
test: test-sqlite test-postgres

test-sqlite: $(VENV)/.installed-test
	@echo "== test suite on SQLite"
	env -u DATABASE_URL $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Outside CI a missing PostgreSQL is reported and skipped; in CI (CI set) it fails the run.
test-postgres: $(VENV)/.installed-test
	@if $(BIN)/python -c "import psycopg; psycopg.connect('$(PG_TEST_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== test suite on PostgreSQL ($(PG_TEST_URL))"; \
		DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); \
	elif [ -n "$$CI" ]; then \
		echo "PostgreSQL is not reachable at $(PG_TEST_URL): the PostgreSQL run is required in CI." >&2; exit 1; \
	else \
		echo "WARNING: PostgreSQL is not reachable at $(PG_TEST_URL); the PostgreSQL run was skipped (CI would fail)." >&2; \
	fi

## drills: fault drills (load, crash, database restart, purge under load) against the real
## server on PostgreSQL, one at a time; DRILL_SECONDS (default 60) is the load drill's length.
drills: $(VENV)/.installed-test
	@echo "== fault drills on PostgreSQL ($(PG_TEST_URL))"
	DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -p no:xdist -m drill -s tests/e2e/test_drills.py $(PYTEST_ARGS)

## bench: generate (or reuse) a PostgreSQL data set of SCALE LLM calls and measure through HTTP.
bench: install
	$(BIN)/python -m bench.run --scale $(SCALE)

check: install
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
