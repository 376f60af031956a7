# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := .[dev,launchers,search,sequences]
# Two tiers of tests (the markers are in pyproject.toml; tests/conftest.py puts other
# files' tests in theirs). `make test-fast`, between two edits: in-process only (no
# test marked `slow`, which starts a process) and nothing `heavy` (training beyond a
# few steps, export, torch.compile): 1,840 tests in 45 to 55 s on 2 cores. `make
# test`, before a commit and in CI: all 3,041, with the 25 slowest; 4 to 9 minutes on
# 2 cores (quiet to busy).
FAST := -m "not slow and not heavy"
# pytest keeps the test modules it rewrites (for its assert messages) as bytecode;
# where PYTHONDONTWRITEBYTECODE is set, each worker would rewrite all of them again
# on every run (about 6 s of CPU each).
PYTEST_ENV := PYTHONDONTWRITEBYTECODE=

.PHONY: demo test test-fast test-newest test-minimum lint typecheck check clean bytecode bench

# .venv: every package at the version in constraints.txt (the full pin set), so that
# `make test` is the same run on every machine. Rebuilt when either file changes.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e "$(EXTRAS)"
	touch $(STAMP)

# Bytecode for the package's own sources: an editable install leaves none, and where
# PYTHONDONTWRITEBYTECODE is set Python would compile them again on every start
# (about 0.2 s of each run). Up-to-date files are skipped.
bytecode: $(STAMP)
	$(PY) -m compileall -q src scripts

demo: $(STAMP) bytecode
	$(PY) scripts/run.py model=demo

test: $(STAMP) bytecode
	$(PYTEST_ENV) $(PY) -m pytest -n 2 --durations=25

test-fast: $(STAMP)
	$(PYTEST_ENV) $(PY) -m pytest -n 2 $(FAST)

# The newest releases pyproject.toml allows (torch aside: constraints-newest.txt), in
# .venv-newest, upgraded on every run, then the fast tier. What it installed is in
# .venv-newest/versions.txt: copy it into constraints.txt to move the pins on.
test-newest:
	test -x .venv-newest/bin/python || $(PYTHON) -m venv .venv-newest
	.venv-newest/bin/python -m pip install --quiet --upgrade pip
	.venv-newest/bin/python -m pip install --quiet -c constraints-newest.txt torch==2.13.0
	.venv-newest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
		-c constraints-newest.txt -e "$(EXTRAS)"
	.venv-newest/bin/python -m pip freeze --all --exclude-editable | sed "s/+cpu$$//" \
		> .venv-newest/versions.txt
	$(PYTEST_ENV) .venv-newest/bin/python -m pytest -n 2 $(FAST)

# The lower bounds pyproject.toml claims (constraints-minimum.txt; torch stays at
# 2.13.0), in .venv-minimum, then the fast tier.
.venv-minimum/.installed: pyproject.toml constraints-minimum.txt
	$(PYTHON) -m venv .venv-minimum
	.venv-minimum/bin/python -m pip install --quiet --upgrade pip
	.venv-minimum/bin/python -m pip install --quiet -c constraints-minimum.txt torch==2.13.0
	.venv-minimum/bin/python -m pip install --quiet -c constraints-minimum.txt -e "$(EXTRAS)"
	touch $@

test-minimum: .venv-minimum/.installed
	$(PYTEST_ENV) .venv-minimum/bin/python -m pytest -n 2 $(FAST)

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
	rm -rf $(VENV) .venv-newest .venv-minimum outputs multirun .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
