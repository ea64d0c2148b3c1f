# Morelia Server — bootstrap and developer tasks.
#
#   make install   create .venv and install exactly Pipfile.lock (incl. dev packages)
#   make run       start the server (manage.py runserver, 127.0.0.1:8080 by default)
#   make test      ruff + mypy + pytest (and `npm ci` in tests/js when npm is there)
#   make lint      ruff + mypy only
#   make bench     run the benchmarks
#   make clean     remove .venv

PYTHON ?= python3
PIPENV_VERSION := 2026.10.3

VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JS := $(CURDIR)/tests/js
JS_STAMP := $(JS)/node_modules/.installed
# Test files run in this many processes at once (pytest-xdist); most tests wait on servers.
TEST_WORKERS ?= 4
# The suite starts about 150 Python processes: they share compiled bytecode, where
# PYTHONDONTWRITEBYTECODE would make each compile the sources it imports again.
unexport PYTHONDONTWRITEBYTECODE

# Make pipenv install into $(VENV) and never create a virtualenv of its own
# (e.g. under ~/.local/share/virtualenvs): VIRTUAL_ENV points it at our venv,
# PIPENV_IGNORE_VIRTUALENVS=0 makes it honour that, and PIPENV_VENV_IN_PROJECT
# resolves to the same .venv should VIRTUAL_ENV be ignored for any reason.
PIPENV := env -u PIPENV_ACTIVE -u PIPENV_DOTENV_LOCATION \
	VIRTUAL_ENV=$(VENV) \
	PIPENV_IGNORE_VIRTUALENVS=0 \
	PIPENV_VENV_IN_PROJECT=1 \
	PIPENV_PIPFILE=$(CURDIR)/Pipfile \
	PIPENV_VERBOSITY=-1 \
	PIPENV_NOSPIN=1 \
	PIPENV_YES=1 \
	PIPENV_DONT_LOAD_ENV=1 \
	$(VENV)/bin/pipenv

.PHONY: install js run test lint test-parallel bench clean

install: $(STAMP)

$(STAMP): Pipfile.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1 || { \
		echo "error: Python >= 3.11 is required; '$(PYTHON)' is missing or older ($$($(PYTHON) --version 2>&1 | head -n 1))." >&2; \
		echo "       Install Python 3.11+ or run: make install PYTHON=/path/to/python3.11" >&2; \
		exit 1; }
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet pipenv==$(PIPENV_VERSION)
	$(PIPENV) sync --dev
	@test "$$($(PIPENV) --venv)" = "$(VENV)" || { echo "error: pipenv used a virtualenv other than $(VENV)" >&2; exit 1; }
	@touch $@

# Element's SDK for tests/test_matrix_e2ee_js.py, exactly as tests/js/package-lock.json says;
# skipped (and that test with it) where npm is missing.
js:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(JS_STAMP); \
	else echo "npm not found: the matrix-js-sdk test will be skipped"; fi

$(JS_STAMP): $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund
	@touch $@

run: install
	$(VPY) manage.py runserver

# `make -j2 test` (as .ci/run does) checks the code while the tests run; the tests that time
# the server run last, one at a time, with nothing else on the machine (two at once, a hashing
# test's ping p99 went past its bound about once in sixteen runs).
test: lint test-parallel
	$(VPY) -m pytest -m serial

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-parallel: install js
	$(VPY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m 'not serial'

bench: install
	$(VPY) bench/run_all.py

clean:
	rm -rf $(VENV)
