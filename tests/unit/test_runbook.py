"""The runbook's commands, run through the operator CLI against moto (the local AWS): the
kill switch turns the stack's queue event sources off and on, rollback moves live aliases to
the previous version (or stops a deployment in progress), restore-table makes a point-in-time
copy of the table and copy-items puts back what was lost."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import boto3
import pytest

from devstack import aws, template
from tests.unit.support import Backing
from webhook_service import cli, runbook

FUNCTIONS = ("DeliverFunction", "GetTaskFunction")
LAMBDA = "lambda.amazonaws.com"


def code(text: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", text)
    return archive.getvalue()


def deployed_stack() -> dict[str, Any]:
    """A stack with what the runbook acts on, under the logical ids SAM gives them: two
    functions, and the deliver function's three lanes as queue event sources (on queues of
    its own: moto would invoke the function for messages sent to a queue with a mapping)."""
    role = {"Fn::GetAtt": ["LambdaRole", "Arn"]}
    resources: dict[str, Any] = {
        "LambdaRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
            },
        }
    }
    for function in FUNCTIONS:
        resources[function] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.13",
                "Handler": "app.handler",
                "Role": role,
                "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            },
        }
    for lane in ("Jobs", "Tests", "Slow"):
        resources[f"{lane}Queue"] = {"Type": "AWS::SQS::Queue"}
        resources[f"DeliverFunction{lane}"] = {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": [f"{lane}Queue", "Arn"]},
                "FunctionName": {"Ref": "DeliverFunction"},
                "BatchSize": 10,
            },
        }
    name = f"runbook-{uuid.uuid4().hex[:8]}"
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources}))
    physical = runbook.stack_resources(cloudformation, name, "AWS::Lambda::Function")
    return {"name": name, "functions": physical}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code_ = cli.main(list(args))
    out = capsys.readouterr()
    return code_, json.loads(out.out) if out.out.strip() else out.err


@pytest.fixture(autouse=True)
def logs_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep the captured stream


@pytest.fixture
def stack(backing: Backing) -> dict[str, Any]:
    return deployed_stack()


# -- the kill switch ----------------------------------------------------------------------------


def test_pausing_deliveries_disables_every_queue_event_source_of_the_stack_and_resuming_enables_them(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, before = run(capsys, "--stack", stack["name"], "deliveries", "status")
    assert status == 0
    assert [(s["logical_id"], s["state"]) for s in before] == [
        ("DeliverFunctionJobs", "Enabled"),
        ("DeliverFunctionSlow", "Enabled"),
        ("DeliverFunctionTests", "Enabled"),
    ]

    paused, after = run(capsys, "--stack", stack["name"], "deliveries", "pause")

    assert paused == 0
    assert {s["state"] for s in after} == {"Disabled"}
    assert {s["queue"] for s in after} == {s["queue"] for s in before}
    resumed, again = run(capsys, "--stack", stack["name"], "deliveries", "resume")
    assert resumed == 0
    assert {s["state"] for s in again} == {"Enabled"}


def test_the_kill_switch_says_so_when_the_stack_has_no_event_sources(
    backing: Backing, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"no-sources-{uuid.uuid4().hex[:8]}"
    boto3.client("cloudformation").create_stack(
        StackName=name, TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
    )

    status, error = run(capsys, "--stack", name, "deliveries", "pause")

    assert status == 1
    assert error == f"python -m webhook_service: deliveries: stack {name} has no event source mappings\n"


# -- rolling back --------------------------------------------------------------------------------


def publish(function: str, versions: int) -> None:
    """Publish `versions` versions of the function, each with new code, and point live at the last."""
    lambda_client = boto3.client("lambda")
    for n in range(versions):
        lambda_client.update_function_code(FunctionName=function, ZipFile=code(f"def handler(e, c):\n    return {n}\n"))
        last = lambda_client.publish_version(FunctionName=function)["Version"]
    lambda_client.create_alias(FunctionName=function, Name=runbook.ALIAS, FunctionVersion=last)


def live(function: str) -> str:
    return str(boto3.client("lambda").get_alias(FunctionName=function, Name=runbook.ALIAS)["FunctionVersion"])


def test_rollback_points_each_live_alias_at_the_version_before(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for function in stack["functions"].values():
        publish(function, 3)

    status, moves = run(capsys, "--stack", stack["name"], "rollback", "--function", "DeliverFunction")

    assert status == 0
    assert [(m["function"], m["was"], m["to"]) for m in moves] == [("DeliverFunction", "3", "2")]
    assert live(stack["functions"]["DeliverFunction"]) == "2"
    assert live(stack["functions"]["GetTaskFunction"]) == "3"  # not named: not moved
    _, moves = run(capsys, "--stack", stack["name"], "rollback")
    assert sorted((m["function"], m["was"], m["to"]) for m in moves) == [
        ("DeliverFunction", "2", "1"),
        ("GetTaskFunction", "3", "2"),
    ]


def test_rollback_to_a_named_version_and_a_dry_run_that_moves_nothing(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deliver = stack["functions"]["DeliverFunction"]
    publish(deliver, 3)

    _, dry = run(capsys, "--stack", stack["name"], "rollback", "--function", "DeliverFunction", "--dry-run")
    assert [(m["was"], m["to"]) for m in dry] == [("3", "2")]
    assert live(deliver) == "3"
    status, moves = run(
        capsys, "--stack", stack["name"], "rollback", "--function", "DeliverFunction", "--to-version", "1"
    )
    assert status == 0
    assert [(m["was"], m["to"]) for m in moves] == [("3", "1")]
    assert live(deliver) == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "NoSuchFunction"], "not functions of"),
        (["--to-version", "1"], "give exactly one --function"),
        (["--function", "DeliverFunction", "--to-version", "9"], "DeliverFunction has no version 9"),
    ],
)
def test_rollback_refuses_what_it_cannot_do_and_says_why(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    publish(stack["functions"]["DeliverFunction"], 2)
    publish(stack["functions"]["GetTaskFunction"], 2)

    status, error = run(capsys, "--stack", stack["name"], "rollback", *args)

    assert status == 1
    assert message in error


class Deployments:
    """CodeDeploy's deployments of a stack (moto has no StopDeployment): what is in progress
    in each group, and what was stopped."""

    def __init__(self, in_progress: dict[str, list[str]]) -> None:
        self.in_progress = in_progress
        self.stopped: list[tuple[str, bool]] = []

    def get_paginator(self, name: str) -> Any:
        assert name == "list_deployments"
        owner = self

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                assert kwargs["includeOnlyStatuses"] == runbook.IN_PROGRESS
                return [{"deployments": owner.in_progress.get(kwargs["deploymentGroupName"], [])}]

        return Pages()

    def stop_deployment(self, deploymentId: str, autoRollbackEnabled: bool) -> None:  # noqa: N803 - boto3's names
        self.stopped.append((deploymentId, autoRollbackEnabled))


class StackOf:
    """CloudFormation's list_stack_resources for a stack of given resources."""

    def __init__(self, resources: list[tuple[str, str, str]]) -> None:
        self.resources = resources

    def get_paginator(self, name: str) -> Any:
        rows = [
            {"LogicalResourceId": logical, "ResourceType": kind, "PhysicalResourceId": physical}
            for logical, kind, physical in self.resources
        ]

        class Pages:
            def paginate(self, StackName: str) -> list[dict[str, Any]]:  # noqa: N803 - boto3's names
                return [{"StackResourceSummaries": rows}]

        return Pages()


def test_a_deployment_in_progress_is_stopped_with_codedeploys_rollback() -> None:
    stack = StackOf(
        [
            ("ServerlessDeploymentApplication", "AWS::CodeDeploy::Application", "app-1"),
            ("DeliverFunctionDeploymentGroup", "AWS::CodeDeploy::DeploymentGroup", "group-deliver"),
            ("GetTaskFunctionDeploymentGroup", "AWS::CodeDeploy::DeploymentGroup", "group-get-task"),
        ]
    )
    codedeploy = Deployments({"group-deliver": ["d-CANARY1"]})

    stopped = runbook.stop_deployments(stack, codedeploy, "ricloud-webhooks-prod")

    assert stopped == ["d-CANARY1"]
    assert codedeploy.stopped == [("d-CANARY1", True)]


# -- point-in-time restore -------------------------------------------------------------------------


@pytest.fixture
def table(backing: Backing) -> str:
    """A table of the template's own, of its own: the restore copies it whole."""
    stack = aws.deploy(template.load_template(), {"Stage": "dev"}, stack_name=f"restore-{uuid.uuid4().hex[:8]}")
    name = stack.refs["Table"]
    boto3.client("dynamodb").update_continuous_backups(
        TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    return name


def item(pk: str, value: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": "ITEM"}, "value": {"S": value}}


def test_a_point_in_time_copy_puts_back_what_was_deleted_and_with_all_what_was_changed(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb = boto3.client("dynamodb")
    for pk in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item=item(pk, "before"))

    status, restored = run(capsys, "--table", table, "restore-table")
    assert status == 0
    assert restored["restored_table"].startswith(f"{table}-restored-")
    assert dynamodb.describe_table(TableName=restored["restored_table"])["Table"]["TableStatus"] == "ACTIVE"
    dynamodb.delete_item(TableName=table, Key={"PK": {"S": "a"}, "SK": {"S": "ITEM"}})  # the incident
    dynamodb.put_item(TableName=table, Item=item("b", "broken"))
    dynamodb.put_item(TableName=table, Item=item("d", "new since"))

    _, dry = run(capsys, "--table", table, "copy-items", "--from", restored["restored_table"], "--dry-run")
    assert (dry["read"], dry["written"]) == (3, 0)
    _, missing = run(capsys, "--table", table, "copy-items", "--from", restored["restored_table"])
    assert (missing["written"], missing["kept"]) == (1, 2)

    def value(pk: str) -> str:
        found = dynamodb.get_item(TableName=table, Key={"PK": {"S": pk}, "SK": {"S": "ITEM"}})
        return str(found["Item"]["value"]["S"])

    assert (value("a"), value("b"), value("d")) == ("before", "broken", "new since")
    _, everything = run(capsys, "--table", table, "copy-items", "--from", restored["restored_table"], "--all")
    assert everything["written"] == 3
    assert (value("a"), value("b"), value("d")) == ("before", "before", "new since")


def test_a_restore_outside_the_recovery_window_or_without_recovery_is_refused(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, error = run(capsys, "--table", table, "restore-table", "--to", "2020-01-01T00:00:00Z")
    assert status == 1
    assert "can be restored to" in error
    boto3.client("dynamodb").update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    status, error = run(capsys, "--table", table, "restore-table")
    assert status == 1
    assert "point-in-time recovery is not on" in error
    status, error = run(capsys, "--table", table, "restore-table", "--to", "yesterday")
    assert status == 2
