# The two commands a newcomer needs are `make run` and `make test`; both build
# the virtual environment themselves, so they work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

LINTED := src tests bench tools clients/python

.PHONY: run test lint format schema postman bench clean

# The server and, beside it, the Python SDK (clients/python: a package of its own, which the
# tests in tests/clients/ run against a real server).
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/auditline serve

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

# src/auditline/storage/schema.sql, regenerated from the migrations (tests/schema_dump.py).
schema: $(STAMP)
	$(BIN)/python -m tests.schema_dump

# clients/postman/, regenerated from the OpenAPI document (needs Node.js; installs the npm
# packages pinned in tools/postman on first use). A test fails when it is stale.
postman: $(STAMP)
	$(BIN)/python -m tools.postman.generate

# Two test processes, each a file at a time (module fixtures stay in one process): the suite
# mostly waits (PostgreSQL, the Java services, servers it starts and kills), so two overlap
# those waits even on two cores. Each process starts its own PostgreSQL and Java services
# (about 1.5 GB together), hence a fixed two rather than one per core. PYTEST_ARGS='-n 0'
# runs everything in one process.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --cov --cov-report=term --cov-report=xml \
	  $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage* coverage.xml \
	  tools/postman/node_modules
