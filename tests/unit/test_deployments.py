"""Gradual deployments, read from the template as CloudFormation deploys it (SAM's translator,
tests/support/sam.py): every function is published behind its `live` alias, every route,
queue event source and schedule calls the alias, and CodeDeploy shifts each alias under the
function's own rollback alarm, rolling back when it fires."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devstack.template import functions, load_template
from tests.support.sam import transformed

TEMPLATE = load_template()
FUNCTIONS = [f.logical_id for f in functions(TEMPLATE)]
OUT: dict[str, Any] = transformed()["Resources"]
ALIAS = "live"


def of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in OUT.items() if r["Type"] == kind}


def alias_of(function: str) -> str:
    return f"{function}Alias{ALIAS}"


def test_every_function_is_published_behind_its_live_alias() -> None:
    aliases = of_type("AWS::Lambda::Alias")

    assert sorted(aliases) == sorted(alias_of(f) for f in FUNCTIONS)
    for function in FUNCTIONS:
        props = aliases[alias_of(function)]["Properties"]
        version = props["FunctionVersion"]["Fn::GetAtt"][0]
        assert props["Name"] == ALIAS
        assert props["FunctionName"] == {"Ref": function}
        assert OUT[version]["Type"] == "AWS::Lambda::Version"
        assert OUT[version]["DeletionPolicy"] == "Retain"  # what a rollback goes back to stays


@pytest.mark.parametrize("function", FUNCTIONS)
def test_codedeploy_shifts_the_alias_gradually_and_rolls_back_on_the_functions_own_alarm(function: str) -> None:
    alias = OUT[alias_of(function)]
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    group = OUT[update["DeploymentGroupName"]["Ref"]]
    props = group["Properties"]

    assert group["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    assert props["DeploymentConfigName"]["Fn::Sub"][1]["ConfigName"] == "Canary10Percent5Minutes"
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in props["AutoRollbackConfiguration"]["Events"]
    assert props["AlarmConfiguration"] == {"Enabled": True, "Alarms": [{"Name": {"Ref": f"{function}RollbackAlarm"}}]}
    assert props["ServiceRoleArn"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_rollback_alarm_watches_the_functions_alias_and_its_own_failures(function: str) -> None:
    props = OUT[f"{function}RollbackAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    alias_dimension = {"Name": "Resource", "Value": {"Fn::Sub": f"${{{function}}}:{ALIAS}"}}

    assert stats["errors"]["Metric"]["MetricName"] == "Errors"
    assert alias_dimension in stats["errors"]["Metric"]["Dimensions"]
    assert stats["failures"]["Metric"]["MetricName"] == "Failures"
    assert {"Name": "function", "Value": {"Ref": function}} in stats["failures"]["Metric"]["Dimensions"]
    assert {s["Period"] for s in stats.values()} == {60}  # a canary lasts minutes: the alarm must be quicker
    assert (props["Threshold"], props["EvaluationPeriods"], props["TreatMissingData"]) == (1, 1, "notBreaching")


def test_every_queue_event_source_calls_an_alias() -> None:
    mappings = of_type("AWS::Lambda::EventSourceMapping")

    assert len(mappings) == 3  # the three lanes
    for name, mapping in mappings.items():
        assert mapping["Properties"]["FunctionName"] == {"Ref": alias_of("DeliverFunction")}, name


def test_every_route_integration_calls_an_alias() -> None:
    paths = OUT["HttpApi"]["Properties"]["Body"]["paths"]
    integrations = [
        (f"{method.upper()} {path}", operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    ]

    assert len(integrations) == 21
    for route, uri in integrations:
        called = re.search(r"/functions/\$\{(\w+)\}/invocations", uri)
        assert called, (route, uri)
        assert called.group(1) in {alias_of(f) for f in FUNCTIONS}, (route, uri)


def test_every_invoke_permission_and_schedule_target_is_the_alias() -> None:
    for name, permission in of_type("AWS::Lambda::Permission").items():
        assert permission["Properties"]["FunctionName"]["Ref"] in {alias_of(f) for f in FUNCTIONS}, name
    (rule,) = of_type("AWS::Events::Rule").values()
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Ref": alias_of("SweepFunction")}]
    (invoke_config,) = of_type("AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["Qualifier"] == ALIAS  # the sweep's no-retry applies to the alias


def test_every_role_the_stack_makes_has_the_permissions_boundary() -> None:
    bounded = {"Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]}
    roles = of_type("AWS::IAM::Role")

    assert len(roles) == len(FUNCTIONS) + 1  # one per function, and CodeDeploy's
    for name, role in roles.items():
        assert role["Properties"].get("PermissionsBoundary") == bounded, name
