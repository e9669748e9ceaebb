# ricloud-webhooks: every task a developer or CI runs. Each target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export PYTHONPATH := layers/webhook_service:.
export SAM_CLI_TELEMETRY := 0
# pyenv installs several Pythons; SAM needs the functions' runtime (3.13) on PATH besides 3.11.
PYENV_RUNTIMES := $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.(11|13)\.' | sort -V | paste -sd: -)
ifneq ($(PYENV_RUNTIMES),)
export PYENV_VERSION := $(PYENV_RUNTIMES)
endif
SAM := $(TOOLS)/bin/sam
SAM_FLAGS := --template-file infra/template.yaml --config-file ../samconfig.toml
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: dev test test-unit test-integration test-e2e lint format build deploy bench clean

## dev: run the service locally on http://127.0.0.1:$${PORT:-3000} (Ctrl-C stops it)
dev: $(VENV)/.installed
	$(PY) -m devstack

## test: the whole test suite, offline
test: $(VENV)/.installed
	$(PY) -m pytest

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

test-integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

## test-e2e: smoke tests of a running stack (E2E_API_URL, E2E_TOKEN, optional E2E_RECEIVER_URL)
test-e2e: $(VENV)/.installed
	$(PY) -m pytest tests/e2e -rs

## lint: ruff, mypy (strict), cfn-lint and sam validate --lint
lint: $(VENV)/.installed $(TOOLS)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(TOOLS)/bin/cfn-lint infra/template.yaml
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template-file infra/template.yaml

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## build: sam build without Docker, then bytecode for the runtime's Python (see docs/operations.md)
RUNTIME_PYTHON := python3.13
build: $(TOOLS)/.installed
	@command -v $(RUNTIME_PYTHON) >/dev/null || { echo "make build needs $(RUNTIME_PYTHON) on PATH (pyenv: PYENV_VERSION=<3.11>:<3.13>)"; exit 1; }
	$(SAM) build $(SAM_FLAGS)
	# Lambda cannot write bytecode next to read-only code, so ship it: compiled by the runtime's
	# Python, checked by hash never by timestamp (zip archives do not keep mtimes exactly).
	$(RUNTIME_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

## deploy: sam build, then sam deploy with samconfig.toml (ENV=default or ENV=prod)
deploy: build
	$(SAM) deploy $(SAM_FLAGS) --config-env $${ENV:-default}

## bench: the benchmarks of docs/benchmarks.md (builds first; about 12 minutes)
BENCH_ENV := POWERTOOLS_LOG_LEVEL=ERROR POWERTOOLS_METRICS_DISABLED=true
bench: $(VENV)/.installed build .bench/runtime/.installed
	$(BENCH_ENV) RUNTIME_PYTHON=$(RUNTIME_PYTHON) $(PY) -m bench.coldstart
	$(BENCH_ENV) $(PY) -m bench.delivery
	$(BENCH_ENV) $(PY) -m bench.listcost
	$(BENCH_ENV) $(PY) -m bench.e2e
	$(BENCH_ENV) $(PY) -m bench.isolation
	$(BENCH_ENV) $(PY) -m bench.localmoto

# boto3 for the runtime's Python, standing in for the one Lambda's runtime provides.
.bench/runtime/.installed:
	$(RUNTIME_PYTHON) -m pip install $(PIP_QUIET) --target .bench/runtime boto3==1.44.5
	touch $@

$(VENV)/.installed: requirements-dev.txt layers/webhook_service/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) -r requirements-dev.txt
	# The official client pins click<8, which the local AWS (moto's Flask) cannot use; the
	# client itself never imports click, so it is installed without its dependencies.
	$(PY) -m pip install $(PIP_QUIET) --no-deps ricloud==3.2.0
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install $(PIP_QUIET) -r requirements-tools.txt
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .bench .pytest_cache .mypy_cache .ruff_cache
