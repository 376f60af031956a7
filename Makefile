# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck check clean bytecode bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,launchers,search]"
	touch $(STAMP)

# Bytecode for the package's own sources: an editable install leaves none, and where
# PYTHONDONTWRITEBYTECODE is set Python would compile them again on every start
# (about 0.2 s of each run). Up-to-date files are skipped.
bytecode: $(STAMP)
	$(PY) -m compileall -q src scripts

demo: $(STAMP) bytecode
	$(PY) scripts/run.py model=demo

test: $(STAMP) bytecode
	$(PY) -m pytest -n 2

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP) bytecode
	$(PY) scripts/bench.py --compile

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
