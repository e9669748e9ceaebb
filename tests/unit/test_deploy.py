"""How the service is deployed, read as data: the Makefile ships the built template, each
samconfig environment says whether it asks first, and the pipeline builds once, deploys dev,
smoke-tests it, and deploys prod only after approval, with OIDC and pinned actions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
SAMCONFIG: dict[str, Any] = tomllib.loads((ROOT / "samconfig.toml").read_text())
WORKFLOW: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
JOBS: dict[str, Any] = WORKFLOW["jobs"]


def recipe(target: str) -> str:
    """The commands of one Makefile target."""
    found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n|.*\\\n)+)", MAKEFILE, re.MULTILINE)
    assert found, target
    return found.group(1)


def test_deploy_and_package_read_the_built_template_with_an_absolute_config_file() -> None:
    assert re.search(r"^BUILT := \.aws-sam/build/template\.yaml$", MAKEFILE, re.MULTILINE)
    assert re.search(r"^SAM_CONFIG := --config-file \$\(CURDIR\)/samconfig\.toml$", MAKEFILE, re.MULTILINE)
    for target in ("deploy", "package"):
        commands = recipe(target)
        assert "--template-file $(BUILT)" in commands, target
        assert "infra/template.yaml" not in commands, target
        assert "$(SAM_CONFIG)" in commands, target
    assert "--template-file infra/template.yaml $(SAM_CONFIG)" in recipe("build")


def test_ci_checks_the_artifact_after_building_it() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]

    assert steps == ["make test", "make test-load", "make lint", "make build", "make artifact-check"]
    assert "$(BUILT)" in recipe("artifact-check")


def test_people_are_asked_first_and_the_pipeline_is_not() -> None:
    for env in ("default", "prod"):
        assert SAMCONFIG[env]["deploy"]["parameters"]["confirm_changeset"] is True, env
    for env, stack in (("pipeline-dev", "default"), ("pipeline-prod", "prod")):
        deploy = SAMCONFIG[env]["deploy"]["parameters"]
        assert deploy["confirm_changeset"] is False
        assert deploy["fail_on_empty_changeset"] is False
        assert "resolve_s3" not in deploy  # the Makefile names the account's artifact bucket
        assert (
            SAMCONFIG[env]["global"]["parameters"]["stack_name"]
            == SAMCONFIG[stack]["global"]["parameters"]["stack_name"]
        )


def test_the_workflow_holds_no_keys_and_pins_every_action_by_commit() -> None:
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()

    assert WORKFLOW["permissions"] == {}
    assert "secrets." not in text
    assert "aws-access-key-id" not in text
    for job in JOBS.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                assert set(step["with"]) >= {"role-to-assume", "allowed-account-ids"}
        assert job["permissions"]["contents"] == "read"


def test_the_pipeline_builds_once_tests_dev_and_deploys_prod_after_approval() -> None:
    build, dev, prod = JOBS["build"], JOBS["deploy-dev"], JOBS["deploy-prod"]
    commands = {name: "\n".join(str(s.get("run", "")) for s in job["steps"]) for name, job in JOBS.items()}

    assert "bash .ci/run" in commands["build"]
    assert commands["build"].count("make package") == 2
    assert "make build" not in commands["deploy-dev"] + commands["deploy-prod"]
    assert (dev["needs"], dev["environment"]) == ("build", "dev")
    assert (prod["needs"], prod["environment"]) == ("deploy-dev", "prod")
    assert "PACKAGED=packaged-dev.yaml" in commands["deploy-dev"]
    assert "PACKAGED=packaged-prod.yaml" in commands["deploy-prod"]
    smoke = commands["deploy-dev"]
    assert "create-key" in smoke
    assert "make test-e2e" in smoke
    assert "trap" in smoke
    assert "deactivate-key" in smoke
    assert build["permissions"]["id-token"] == "write"
