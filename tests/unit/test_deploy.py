"""How the service is deployed, read as data: the Makefile ships the built template, each
samconfig environment says whether it asks first, and the pipeline builds once with no cloud
permission, packages in a job of its own, deploys dev, smoke-tests it, and deploys prod only
after approval, with OIDC and pinned actions; pull requests run the checks with no cloud
permission at all."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
SAMCONFIG: dict[str, Any] = tomllib.loads((ROOT / "samconfig.toml").read_text())
WORKFLOW: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
JOBS: dict[str, Any] = WORKFLOW["jobs"]
CHECKS: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "checks.yml").read_text())
WORKFLOWS = {"deploy.yml": WORKFLOW, "checks.yml": CHECKS}


def commands(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


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


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_the_workflows_hold_no_keys_and_pin_every_action_by_commit(name: str) -> None:
    workflow = WORKFLOWS[name]
    text = (ROOT / ".github" / "workflows" / name).read_text()

    assert workflow["permissions"] == {}
    assert "secrets." not in text
    assert "aws-access-key-id" not in text
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                assert set(step["with"]) >= {"role-to-assume", "allowed-account-ids"}
        assert job["permissions"]["contents"] == "read"


def test_the_pipeline_builds_once_packages_tests_dev_and_deploys_prod_after_approval() -> None:
    package, dev, prod = JOBS["package"], JOBS["deploy-dev"], JOBS["deploy-prod"]
    run = {name: commands(job) for name, job in JOBS.items()}

    assert "bash .ci/run" in run["build"]
    assert run["package"].count("make package") == 2
    assert "make build" not in run["package"] + run["deploy-dev"] + run["deploy-prod"]
    assert (package["needs"], dev["needs"], dev["environment"]) == ("build", "package", "dev")
    assert (prod["needs"], prod["environment"]) == ("deploy-dev", "prod")
    assert "PACKAGED=packaged-dev.yaml" in run["deploy-dev"]
    assert "PACKAGED=packaged-prod.yaml" in run["deploy-prod"]
    smoke = run["deploy-dev"]
    assert "create-key" in smoke
    assert "make test-e2e" in smoke
    assert "trap" in smoke
    assert "deactivate-key" in smoke
    for job in (dev, prod):
        assert "PermissionsBoundaryArn" not in commands(job)  # the Makefile passes it
        assert 'PERMISSIONS_BOUNDARY_ARN="$PERMISSIONS_BOUNDARY_ARN"' in commands(job)


def test_only_the_package_and_deploy_jobs_can_mint_credentials_and_packaging_runs_no_test_code() -> None:
    minting = {name for name, job in JOBS.items() if job["permissions"].get("id-token") == "write"}
    package = commands(JOBS["package"])

    assert minting == {"package", "deploy-dev", "deploy-prod"}
    assert JOBS["build"]["permissions"] == {"contents": "read"}  # the suite and its dependencies run here
    for test_code in (".ci/run", "make test", "pytest", "make lint", ".venv/.installed", "artifact-check"):
        assert test_code not in package, test_code
    assert "TOOLS_REQUIREMENTS=requirements-sam.txt" in package  # the SAM CLI alone, from wheels
    assert "--only-binary :all:" in recipe("$(TOOLS)/.installed")
    assert (ROOT / "requirements-sam.txt").read_text().count("==") == 1


def test_concurrency_is_per_environment_so_an_approval_blocks_no_other_environment() -> None:
    assert "concurrency" not in WORKFLOW
    assert JOBS["deploy-dev"]["concurrency"] == {"group": "deploy-dev", "cancel-in-progress": False}
    assert JOBS["deploy-prod"]["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}


def test_pull_requests_run_every_check_with_no_cloud_permission() -> None:
    (job,) = CHECKS["jobs"].values()

    triggers: dict[str, Any] = CHECKS[True]  # type: ignore[index]  # YAML 1.1 reads the key `on` as true

    assert set(triggers) == {"pull_request"}  # never pull_request_target
    assert job["permissions"] == {"contents": "read"}
    assert "bash .ci/run" in commands(job)
    assert "configure-aws-credentials" not in (ROOT / ".github" / "workflows" / "checks.yml").read_text()


def test_the_artifact_bucket_never_expires_what_a_live_stack_may_name() -> None:
    from devstack.template import load_template

    bucket = load_template(ROOT / "infra" / "pipeline.yaml")["Resources"]["ArtifactBucket"]["Properties"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]

    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert not {"ExpirationInDays", "ExpirationDate", "Expiration"} & set(rule)
    assert set(rule) == {"Id", "Status", "NoncurrentVersionExpiration"}
