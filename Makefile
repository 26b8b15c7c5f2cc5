# Two commands a newcomer needs: `make run` and `make test`. Everything else is for developers.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/tally: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/tally

install: $(BIN)/tally

run: install  ## start every service in one process on embedded PostgreSQL
	$(BIN)/tally run

test: install  ## the whole test suite (starts embedded PostgreSQL and the tansu broker itself), on two workers
	$(BIN)/pytest -q -n 2 --dist worksteal

test-core: install  ## the pure core and the in-memory log's contract: seconds, no PostgreSQL, no broker
	$(BIN)/pytest -q tests/tally_core tests/tally_infra/test_log_contract.py::TestMemoryLog

bench: install  ## the benchmark (~5 min; `tally bench --quick` for ~2 min); needs the bench extra
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/tally bench

schemas: install
	$(BIN)/tally schemas --write

.PHONY: install run test test-core bench schemas
