# zfs-reconciler — developer entry points. `make install` first; everything runs in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint typecheck test schema bench check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

lint:
	$(BIN)/ruff check reconciler tests
	$(BIN)/ruff format --check reconciler tests

typecheck:
	$(BIN)/mypy

test:
	$(BIN)/pytest -q

schema:
	$(BIN)/python -m reconciler schema > schemas/manifests.schema.json

bench:
	$(BIN)/python -m tests.bench.plan_bench --scenario steady
	$(BIN)/python -m tests.bench.plan_bench --scenario prune

check: lint typecheck test
