# The README's commands. Everything runs from the project's own .venv and node_modules;
# stamp files make a repeated `make run` / `make test` skip work that is already done.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FLASK  := $(VENV)/bin/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000
PYTEST_ARGS ?=
SCALES ?=

# Stamps live inside the folder they describe, so deleting the folder also forgets the stamp.
VENV_STAMP   := $(VENV)/.stamp-requirements
NPM_STAMP    := node_modules/.stamp-npm-ci
VENDOR       := crm/static/vendor

.PHONY: help venv assets db run test test-sqlite test-postgres test-e2e bench clean distclean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

venv: $(VENV_STAMP)  ## create .venv and install requirements-dev.txt (only when they changed)

$(VENV_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { echo "creating $(VENV) with $$(command -v $(PYTHON))"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

assets: venv $(NPM_STAMP)  ## npm ci when needed, then copy the vendor files into crm/static/vendor
	$(PY) scripts/build_assets.py
	$(PY) scripts/i18n.py compile

db: venv  ## migrate the database (instance/crm.sqlite3, or DATABASE_URL)
	@mkdir -p instance
	$(FLASK) db upgrade

run: venv assets db  ## install, build, migrate, load the demo if empty, serve on http://127.0.0.1:5000
	$(FLASK) crm demo-data --if-empty
	$(FLASK) run --host $(HOST) --port $(PORT)

# The whole suite, three passes: every non-browser test on SQLite, then the same on PostgreSQL (a throwaway server
# on 127.0.0.1, started and stopped by the tests), both on two processes, then the browser tests on SQLite.
# PYTEST_ARGS applies to each pass; a pass it selects nothing from is not a failure (pytest exit code 5).
PYTEST_PASS = $(PY) -m pytest $(1) $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: venv assets  ## the whole suite: SQLite, PostgreSQL, then the browser tests: make test PYTEST_ARGS='-k visits'
	$(call PYTEST_PASS,-m "not e2e" -n 2)
	CRM_TEST_DB=postgres $(call PYTEST_PASS,-m "not e2e" -n 2)
	$(call PYTEST_PASS,-m e2e)

test-sqlite: venv assets  ## the non-browser suite on SQLite only
	$(call PYTEST_PASS,-m "not e2e" -n 2)

test-postgres: venv assets  ## the non-browser suite on PostgreSQL only
	CRM_TEST_DB=postgres $(call PYTEST_PASS,-m "not e2e" -n 2)

test-e2e: venv assets  ## the browser tests only
	$(call PYTEST_PASS,-m e2e)

bench: venv  ## benchmarks: make bench SCALES=1,10
	$(PY) -m bench $(if $(SCALES),--scales $(SCALES))

clean:  ## remove built assets, caches and test output (keeps .venv, node_modules and instance/)
	rm -rf $(VENDOR) .pytest_cache .hypothesis test-artifacts
	find . \( -path ./$(VENV) -o -path ./node_modules -o -path ./.git \) -prune -o \
	    -name __pycache__ -type d -prune -exec rm -rf {} + -o -name '*.pyc' -type f -exec rm -f {} +
	rm -f .stamp-*

distclean: clean  ## also remove .venv and node_modules (instance/ and its database are kept)
	rm -rf $(VENV) node_modules
