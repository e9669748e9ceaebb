# ricloud-webhooks: every task a developer or CI runs. Each target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
# What $(TOOLS) is made from: every tool; the pipeline's package job makes a SAM-only one
# (TOOLS=.venv-sam TOOLS_REQUIREMENTS=requirements-sam.txt), from wheels alone.
TOOLS_REQUIREMENTS ?= requirements-tools.txt
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
# pyenv installs several Pythons; SAM needs the functions' runtime (3.13) on PATH besides 3.11.
PYENV_RUNTIMES := $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.(11|13)\.' | sort -V | paste -sd: -)
ifneq ($(PYENV_RUNTIMES),)
export PYENV_VERSION := $(PYENV_RUNTIMES)
endif
RUNTIME_VENV := .venv-runtime
SAM := $(TOOLS)/bin/sam
# SAM resolves a relative --config-file from the template's folder (infra/, or the built
# template's .aws-sam/build/): an absolute path means the same file for every command.
SAM_CONFIG := --config-file $(CURDIR)/samconfig.toml
# What sam build writes and everything after it ships: functions, the layer with its
# dependencies, bytecode. Packaging or deploying infra/template.yaml would ship the sources.
BUILT := .aws-sam/build/template.yaml
ENV ?= default
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: dev dev-reset env listen sam-local sam-invoke test test-unit test-integration test-load test-e2e lint format build deploy \
	package deploy-packaged artifact-check bench clean chromium

## dev: run the service locally on http://127.0.0.1:$${PORT:-3000} (Ctrl-C stops it; what was made is kept;
## one line a request, VERBOSE=1 for the functions' log and metric lines)
DEVSTACK_DATA ?= .devstack
DEV_OUTPUT = $(if $(VERBOSE),,--quiet)
dev: $(VENV)/.installed
	@$(PY) -m devstack --data-dir $(DEVSTACK_DATA) $(DEV_OUTPUT)

## dev-reset: forget what make dev kept, then start it afresh
dev-reset: $(VENV)/.installed
	@$(PY) -m devstack --data-dir $(DEVSTACK_DATA) --reset $(DEV_OUTPUT)

## env: the README's shell variables (API, T, ORG, KEY, and ID: make listen's config) from what make dev saved:
## eval "$$(make -s env)"
env:
	@DEVSTACK_DATA=$(DEVSTACK_DATA) $(PYTHON) -m devstack.env

## sam-local: the built functions under sam local start-api (needs Docker), against the embedded local AWS
sam-local: build $(VENV)/.installed
	$(PY) -m devstack.samlocal --sam $(SAM) --data-dir $(DEVSTACK_DATA) start-api $(if $(SAM_ARGS),-- $(SAM_ARGS))

## sam-invoke: sam local invoke $$FUNCTION (default DeliverFunction) with its events/ sample, while sam-local runs
FUNCTION ?= DeliverFunction
sam-invoke: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) -m devstack.samlocal --sam $(SAM) --data-dir $(DEVSTACK_DATA) invoke $(FUNCTION) \
		$(if $(EVENT),--event $(EVENT)) $(if $(SAM_ARGS),-- $(SAM_ARGS))

## listen: a receiver that prints each delivery and checks its signatures (CONFIG=<id>, else a new config;
## LISTEN_PORT=<port>, else the config's port or any free one)
listen: $(VENV)/.installed
	@DEVSTACK_DATA=$(DEVSTACK_DATA) $(PY) -m devstack.listen $(if $(CONFIG),--config $(CONFIG),--create) \
		$(if $(LISTEN_PORT),--port $(LISTEN_PORT))

## test: the test suite but the load tier, offline (it installs SAM's and cfn-lint's tools, which some tests
## run, and Debian's Chromium for the console's browser tests): the unit tier runs beside the rest
# Three pytest sessions at once on two cores: the suite mostly waits (on the local stacks, their
# receivers, a browser, a paced receiver), so one session used about one core. The shared
# local stack's integration tests run in the foreground; beside them, the unit tier (CPU work
# on moto in-process) with the tests that start stacks of their own (BESIDE), and the two
# longest integration tests on a stack of their session's own (APART: the generated requests
# and the outage drill). Each session runs the log scan and the IAM check of its own tests, and
# keeps a pytest cache of its own.
BESIDE := tests/unit tests/integration/test_persistence.py tests/integration/test_sweep.py
APART := tests/integration/test_fuzz.py tests/integration/test_recover.py
test: $(VENV)/.installed $(TOOLS)/.installed chromium
	@beside_log=$$(mktemp); apart_log=$$(mktemp); \
	$(PY) -m pytest $(BESIDE) -o cache_dir=.pytest_cache/beside >"$$beside_log" 2>&1 & beside=$$!; \
	$(PY) -m pytest -m "not load" $(APART) -o cache_dir=.pytest_cache/apart >"$$apart_log" 2>&1 & apart=$$!; \
	trap 'for session in $$beside $$apart; do kill $$session 2>/dev/null; done; rm -f "$$beside_log" "$$apart_log"' EXIT; \
	$(PY) -m pytest -m "not load" $(addprefix --ignore=,$(BESIDE) $(APART)); shared=$$?; \
	wait $$beside; besides=$$?; wait $$apart; aparts=$$?; beside=; apart=; \
	echo "============ the unit tier and the tests with stacks of their own (run beside) ============"; \
	cat "$$beside_log"; \
	echo "============ the generated requests and the outage drill (run apart, on a stack of their own) ============"; \
	cat "$$apart_log"; \
	test $$shared -eq 0 && test $$besides -eq 0 && test $$aparts -eq 0

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

test-integration: $(VENV)/.installed chromium
	$(PY) -m pytest tests/integration

## test-load: the load tier, outside make test (.ci/run runs it): 500 configs by 16 concurrent clients
test-load: $(VENV)/.installed
	$(PY) -m pytest tests/integration -m load

# The console's browser tests drive Debian's Chromium (docs/console.md). Installed here when it
# is missing and can be (root, apt-get); when it cannot, those tests are skipped and say why.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the console's browser tests (apt-get, from the network)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-liberation >/dev/null; } || echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "no $(CHROMIUM) and no root apt-get to install it: the console's browser tests will be skipped"; fi

## test-e2e: smoke tests of a running stack (E2E_API_URL, E2E_TOKEN, optional E2E_RECEIVER_URL)
test-e2e: $(VENV)/.installed
	$(PY) -m pytest tests/e2e -rs

## lint: ruff, mypy (strict), the layering contracts, cfn-lint, sam validate --lint, what sam local gives each function, actionlint and zizmor
lint: $(VENV)/.installed $(TOOLS)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(TOOLS)/bin/cfn-lint infra/template.yaml infra/pipeline.yaml
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template-file infra/template.yaml
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(TOOLS)/bin/actionlint
	$(TOOLS)/bin/zizmor --offline --no-progress .github/workflows
	$(TOOLS)/bin/python -m devstack.samcheck

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## build: sam build without Docker, then bytecode for the runtime's Python (see docs/operations.md)
RUNTIME_PYTHON := python3.13
build: $(TOOLS)/.installed
	@command -v $(RUNTIME_PYTHON) >/dev/null || { echo "make build needs $(RUNTIME_PYTHON) on PATH (pyenv: PYENV_VERSION=<3.11>:<3.13>)"; exit 1; }
	$(SAM) build --template-file infra/template.yaml $(SAM_CONFIG)
	# SAM copies the layer's whole folder; its pyproject.toml (the editable install's) is not part
	# of the layer, so the layer ships what it did before it had one (make artifact-check checks).
	rm -f .aws-sam/build/ServiceLayer/python/pyproject.toml
	# Lambda cannot write bytecode next to read-only code, so ship it: compiled by the runtime's
	# Python, checked by hash never by timestamp (zip archives do not keep mtimes exactly).
	# sam package zips these folders as they are (make artifact-check finds the bytecode in the zips).
	$(RUNTIME_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

# Stack parameters: the stage of the samconfig environment, who the alarms reach
# (ALARM_EMAIL or ALARM_TOPIC_ARN; a prod stack is refused without one), the permissions
# boundary of its roles (PERMISSIONS_BOUNDARY_ARN: the pipeline's execution role makes roles
# only with it) and, to override the canary, DEPLOYMENT_STRATEGY (e.g. AllAtOnce).
STAGE = $(if $(filter prod pipeline-prod,$(ENV)),prod,dev)
PARAMETERS = Stage=$(STAGE) AllowPrivateTargets=false \
	$(if $(ALARM_EMAIL),AlarmEmail=$(ALARM_EMAIL)) $(if $(ALARM_TOPIC_ARN),AlarmTopicArn=$(ALARM_TOPIC_ARN)) \
	$(if $(PERMISSIONS_BOUNDARY_ARN),PermissionsBoundaryArn=$(PERMISSIONS_BOUNDARY_ARN)) \
	$(if $(DEPLOYMENT_STRATEGY),DeploymentStrategy=$(DEPLOYMENT_STRATEGY))

## deploy: sam build, then sam deploy of the built template (ENV=default, the dev stack; ENV=prod)
deploy: build
	$(SAM) deploy --template-file $(BUILT) $(SAM_CONFIG) --config-env $(ENV) --parameter-overrides "$(strip $(PARAMETERS))"

## package: upload the built artifact to ARTIFACT_BUCKET and write PACKAGED (the pipeline's step)
PACKAGED ?= .aws-sam/packaged.yaml
package: $(TOOLS)/.installed
	@test -f $(BUILT) || { echo "no $(BUILT): run make build first"; exit 1; }
	$(SAM) package --template-file $(BUILT) $(SAM_CONFIG) --config-env $(ENV) \
		--s3-bucket $(ARTIFACT_BUCKET) --s3-prefix ricloud-webhooks --output-template-file $(PACKAGED)

## deploy-packaged: deploy PACKAGED unattended (the pipeline's step; ENV=pipeline-dev or pipeline-prod)
deploy-packaged: $(TOOLS)/.installed
	$(SAM) deploy --template-file $(PACKAGED) $(SAM_CONFIG) --config-env $(ENV) \
		--s3-bucket $(ARTIFACT_BUCKET) --s3-prefix ricloud-webhooks --parameter-overrides "$(strip $(PARAMETERS))" \
		$(if $(CFN_EXECUTION_ROLE_ARN),--role-arn $(CFN_EXECUTION_ROLE_ARN))

## artifact-check: package the built template as sam deploy does (into the local AWS's S3), import
## every handler from the zips under python3.13, then serve them locally and run tests/e2e (after make build)
artifact-check: $(VENV)/.installed $(TOOLS)/.installed $(RUNTIME_VENV)/.installed .bench/runtime/.installed
	$(PY) -m devstack.artifact --template $(BUILT) --sam $(SAM) --python $(RUNTIME_PYTHON) \
		--runtime-python $(RUNTIME_VENV)/bin/python --runtime-sdk .bench/runtime

## bench: the benchmarks of docs/benchmarks.md (builds first; about 20 minutes)
BENCH_ENV := POWERTOOLS_LOG_LEVEL=ERROR POWERTOOLS_METRICS_DISABLED=true
bench: $(VENV)/.installed build .bench/runtime/.installed
	$(BENCH_ENV) RUNTIME_PYTHON=$(RUNTIME_PYTHON) $(PY) -m bench.coldstart
	$(BENCH_ENV) $(PY) -m bench.delivery
	$(BENCH_ENV) $(PY) -m bench.listcost
	$(BENCH_ENV) $(PY) -m bench.capacity
	$(BENCH_ENV) $(PY) -m bench.e2e
	$(BENCH_ENV) $(PY) -m bench.isolation
	$(BENCH_ENV) $(PY) -m bench.fairuse
	$(BENCH_ENV) $(PY) -m bench.localmoto
	$(BENCH_ENV) $(PY) -m bench.sweep

# boto3 for the runtime's Python, standing in for the one Lambda's runtime provides.
.bench/runtime/.installed:
	$(RUNTIME_PYTHON) -m pip install $(PIP_QUIET) --target .bench/runtime boto3==1.44.5
	touch $@

$(VENV)/.installed: requirements-dev.txt layers/webhook_service/requirements.txt layers/webhook_service/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) -r requirements-dev.txt
	# The official client pins click<8, which the local AWS (moto's Flask) cannot use; the
	# client itself never imports click, so it is installed without its dependencies.
	$(PY) -m pip install $(PIP_QUIET) --no-deps ricloud==3.2.0
	# The layer's package, editable: `import webhook_service` and the command `ricloud-webhooks`
	# without PYTHONPATH. The root's packages (tests, devstack, bench) import from the root:
	# `python -m pytest` and `python -m devstack` put the working folder on the path.
	$(PY) -m pip install $(PIP_QUIET) -e layers/webhook_service
	touch $@

# The local stack under the functions' runtime Python, for make artifact-check.
$(RUNTIME_VENV)/.installed: requirements-runtime.txt
	test -x $(RUNTIME_VENV)/bin/python || $(RUNTIME_PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install $(PIP_QUIET) -r requirements-runtime.txt
	touch $@

$(TOOLS)/.installed: $(TOOLS_REQUIREMENTS) requirements-sam.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install $(PIP_QUIET) --only-binary :all: -r $(TOOLS_REQUIREMENTS)
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) $(RUNTIME_VENV) .aws-sam .bench .pytest_cache .mypy_cache .ruff_cache
