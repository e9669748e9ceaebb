# ricloud-webhooks: every task a developer or CI runs. Each target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export PYTHONPATH := layers/webhook_service:.
export SAM_CLI_TELEMETRY := 0
SAM := $(TOOLS)/bin/sam
SAM_FLAGS := --template-file infra/template.yaml --config-file ../samconfig.toml
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: dev test test-unit test-integration lint format build deploy clean

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

## build: sam build without Docker (needs a python3.13 on PATH; pyenv's is used when present)
build: $(TOOLS)/.installed
	PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | head -1 | sed 's/^/3.11.7:/') \
	  $(SAM) build $(SAM_FLAGS)

## deploy: sam build, then sam deploy with samconfig.toml (ENV=default or ENV=prod)
deploy: build
	$(SAM) deploy $(SAM_FLAGS) --config-env $${ENV:-default}

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
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
