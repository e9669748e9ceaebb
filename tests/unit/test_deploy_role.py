"""The pipeline's CloudFormation execution role (infra/pipeline.yaml), derived from the stack it
deploys: every resource type of infra/template.yaml as CloudFormation receives it (packaged,
then SAM's transform: tests/support/sam.py) needs its handlers' create, read, update and
delete permissions (the resource schemas cfn-lint ships), each on a resource as CloudFormation
names it; the role grants each, or withholds it for a reason the template is checked against.
And the role cannot make a role stronger than the stack's own: every role it creates or
changes carries the pipeline's permissions boundary, and attaches only the managed policies
the template names."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.template import load_template
from tests.support.iampolicy import (
    Resolver,
    Statement,
    action_arn_patterns,
    allows,
    handler_permissions,
    is_known_action,
    managed_policy_statements,
    role_statements,
)
from tests.support.sam import PIPELINE_PARAMETERS, transformed

ROOT = Path(__file__).resolve().parents[2]
STAGE = PIPELINE_PARAMETERS["Stage"]
STACK = f"ricloud-webhooks-{STAGE}"
REGION, ACCOUNT = "eu-west-1", "111122223333"
SUFFIX = "1A2B3C4D5E6F"  # what CloudFormation appends to the names it makes
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}

APP: dict[str, Any] = transformed()
RESOURCES: dict[str, Any] = APP["Resources"]
PIPELINE = load_template(ROOT / "infra" / "pipeline.yaml")
BUCKET = "ricloud-webhooks-pipeline-artifactbucket-1a2b3c4d5e6f"
BOUNDARY_ARN = PIPELINE_PARAMETERS["PermissionsBoundaryArn"]


def pipeline_resolver() -> Resolver:
    roles = {
        logical: str(resource["Properties"]["RoleName"]["Fn::Sub"]).replace("${Stage}", STAGE)
        for logical, resource in PIPELINE["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    names = {"ArtifactBucket": BUCKET, "GitHubOidcProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/github"}
    names.update(roles)
    names.update(
        {
            logical: BOUNDARY_ARN
            for logical, resource in PIPELINE["Resources"].items()
            if resource["Type"] == "AWS::IAM::ManagedPolicy"
        }
    )
    attributes = {"ArtifactBucket.Arn": f"arn:aws:s3:::{BUCKET}"}
    attributes.update({f"{logical}.Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}" for logical, name in roles.items()})
    return Resolver(
        PIPELINE,
        {"Stage": STAGE, "GitHubRepository": "owner/repo", "ExistingOidcProviderArn": "", **PSEUDO},
        names,
        attributes,
    )


PIPELINE_RESOLVER = pipeline_resolver()
EXECUTION_ROLE = role_statements(PIPELINE_RESOLVER, "CloudFormationExecutionRole")


# -- where each resource of the stack lives, as CloudFormation names it --------------------


def generated(logical_id: str) -> str:
    return f"{STACK}-{logical_id[:24]}-{SUFFIX}"


def arn(service: str, rest: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


def function_arn(reference: Any) -> str:
    """The ARN a `Ref` to a function, version or alias of the stack stands for."""
    logical = reference["Ref"]
    kind = RESOURCES[logical]["Type"]
    if kind == "AWS::Lambda::Function":
        return arn("lambda", f"function:{generated(logical)}")
    props = RESOURCES[logical]["Properties"]
    qualifier = props["Name"] if kind == "AWS::Lambda::Alias" else "1"
    return f"{function_arn(props['FunctionName'])}:{qualifier}"


API = arn("apigateway", "/apis/a1b2c3d4e5", REGION).replace(f":{ACCOUNT}:", "::")
APPLICATION = generated("ServerlessDeploymentApplication")
ESM_UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
SAMPLE_ARNS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "AWS::Lambda::Function": lambda logical, _: function_arn({"Ref": logical}),
    "AWS::Lambda::Version": lambda logical, _: function_arn({"Ref": logical}),
    "AWS::Lambda::Alias": lambda logical, _: function_arn({"Ref": logical}),
    "AWS::Lambda::Permission": lambda _, props: function_arn(props["FunctionName"]),
    "AWS::Lambda::EventInvokeConfig": lambda _, props: f"{function_arn(props['FunctionName'])}:{props['Qualifier']}",
    "AWS::Lambda::EventSourceMapping": lambda *_: arn("lambda", f"event-source-mapping:{ESM_UUID}"),
    "AWS::Lambda::LayerVersion": lambda _, props: arn("lambda", f"layer:{props['LayerName']}:1"),
    "AWS::IAM::Role": lambda logical, _: f"arn:aws:iam::{ACCOUNT}:role/{generated(logical)}",
    "AWS::DynamoDB::Table": lambda logical, _: arn("dynamodb", f"table/{generated(logical)}"),
    "AWS::SQS::Queue": lambda logical, _: arn("sqs", generated(logical)),
    "AWS::SNS::Topic": lambda logical, _: arn("sns", generated(logical)),
    "AWS::SNS::Subscription": lambda *_: arn("sns", f"{generated('AlarmTopic')}:5c4b3a29-1807-4f6e-8d5c-4b3a29180706"),
    "AWS::CloudWatch::Alarm": lambda logical, _: arn("cloudwatch", f"alarm:{generated(logical)}"),
    "AWS::CloudWatch::Dashboard": lambda *_: arn("cloudwatch", f"dashboard/{STACK}", region=""),
    "AWS::Logs::LogGroup": lambda _, props: arn("logs", f"log-group:{props['LogGroupName']}:*"),
    "AWS::Logs::MetricFilter": lambda _, props: arn("logs", f"log-group:{props['LogGroupName']}:*"),
    "AWS::ApiGatewayV2::Api": lambda *_: API,
    "AWS::ApiGatewayV2::Stage": lambda *_: f"{API}/stages/$default",
    "AWS::Events::Rule": lambda logical, _: arn("events", f"rule/{generated(logical)}"),
    "AWS::CodeDeploy::Application": lambda *_: arn("codedeploy", f"application:{APPLICATION}"),
    "AWS::CodeDeploy::DeploymentGroup": lambda logical, _: arn(
        "codedeploy", f"deploymentgroup:{APPLICATION}/{generated(logical)}"
    ),
}


def app_resolver() -> Resolver:
    """Physical names and ARNs for every resource of the transformed stack."""
    names: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for logical, resource in RESOURCES.items():
        kind = resource["Type"]
        if kind not in SAMPLE_ARNS:
            continue
        props = stub_properties(logical, resource)
        found = SAMPLE_ARNS[kind](logical, props)
        attributes[f"{logical}.Arn"] = found
        name = found.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        names[logical] = found if kind in ("AWS::SNS::Topic", "AWS::Lambda::LayerVersion") else name
        if kind == "AWS::SQS::Queue":
            names[logical] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            attributes[f"{logical}.QueueName"] = name
    return Resolver(APP, {**PIPELINE_PARAMETERS, **PSEUDO, "AWS::StackName": STACK}, names, attributes)


def stub_properties(logical: str, resource: dict[str, Any]) -> dict[str, Any]:
    """The properties a sample ARN is made from, with the stack's name in place."""
    props = dict(resource.get("Properties", {}))
    if resource["Type"] == "AWS::Logs::MetricFilter":
        group = props["LogGroupName"]["Ref"]
        return stub_properties(group, RESOURCES[group])
    if isinstance(props.get("LogGroupName"), dict):
        props["LogGroupName"] = str(props["LogGroupName"]["Fn::Sub"]).replace("${AWS::StackName}", STACK)
    return props


def samples() -> dict[str, str]:
    """Every resource of the stack, and what the stack reads that it does not make (its
    packaged code, CodeDeploy's deployment configurations), by a name for messages."""
    found = {
        logical: SAMPLE_ARNS[r["Type"]](logical, stub_properties(logical, r))
        for logical, r in RESOURCES.items()
        if r["Type"] in SAMPLE_ARNS
    }
    found["packaged code"] = f"arn:aws:s3:::{BUCKET}/ricloud-webhooks/0123456789abcdef0123456789abcdef"
    found["deployment configuration"] = arn("codedeploy", f"deploymentconfig:{CANARY}")
    found["layer"] = arn("lambda", "layer:ServiceLayer")
    return found


SAMPLES = samples()


# -- what the stack's resource types need --------------------------------------------------


def properties_of(kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in RESOURCES.values() if r["Type"] == kind]


def nowhere(kind: str, *names: str) -> bool:
    return not any(name in props for props in properties_of(kind) for name in names)


@dataclass(frozen=True)
class Withheld:
    """Handler permissions the role does not grant, and why: each reason is a fact of the
    template, checked, so a template that starts to need the permission fails the test."""

    actions: tuple[str, ...]  # IAM actions, or `service:*`
    reason: str
    holds: Callable[[], bool]
    kinds: tuple[str, ...] = ()  # only for these resource types (all when empty)

    def covers(self, kind: str, action: str) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        return any(
            action.lower() == a.lower() or (a.endswith(":*") and action.startswith(a[:-1])) for a in self.actions
        )


WITHHELD = (
    Withheld(
        ("iam:DeleteRolePermissionsBoundary",),
        "removing a role's permissions boundary is how a role escapes it; the stack never removes one",
        lambda: True,
    ),
    Withheld(
        ("kms:*",),
        "only with a customer managed key: the table, queues and functions use AWS owned or "
        "managed keys, whose key policies need no grant from the caller",
        lambda: (
            nowhere("AWS::Lambda::Function", "KmsKeyArn")
            and nowhere("AWS::Lambda::EventSourceMapping", "KMSKeyArn")
            and nowhere("AWS::SQS::Queue", "KmsMasterKeyId")
            and nowhere("AWS::SNS::Topic", "KmsMasterKeyId")
            and nowhere("AWS::Logs::LogGroup", "KmsKeyId")
            and all(
                "KMSMasterKeyId" not in p.get("SSESpecification", {}) for p in properties_of("AWS::DynamoDB::Table")
            )
        ),
    ),
    Withheld(
        ("ec2:*", "elasticfilesystem:*", "s3files:*", "lambda:PassCapacityProvider"),
        "only for functions in a VPC, with file systems or on capacity providers: none is",
        lambda: nowhere("AWS::Lambda::Function", "VpcConfig", "FileSystemConfigs", "CapacityProviderConfig"),
    ),
    Withheld(
        ("kinesis:*",),
        "only for a table that streams to Kinesis: the table does not",
        lambda: nowhere("AWS::DynamoDB::Table", "KinesisStreamSpecification"),
    ),
    Withheld(
        ("iam:CreateServiceLinkedRole",),
        "service-linked roles are made once per account by an administrator, never by this stack "
        "(the table has no replicas and no contributor insights)",
        lambda: nowhere("AWS::DynamoDB::Table", "Replicas", "ContributorInsightsSpecification"),
    ),
    Withheld(
        (
            "dynamodb:ImportTable",
            "dynamodb:DescribeImport",
            "s3:GetObject",
            "s3:ListBucket",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogGroups",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
            "logs:PutRetentionPolicy",
        ),
        "only to create a table from an S3 import (which logs to CloudWatch Logs): the table is not imported",
        lambda: nowhere("AWS::DynamoDB::Table", "ImportSourceSpecification"),
        kinds=("AWS::DynamoDB::Table",),
    ),
    Withheld(
        ("firehose:*",),
        "only for a log group that delivers to Firehose: nothing in the stack delivers logs elsewhere",
        lambda: (
            not any(r["Type"].startswith(("AWS::KinesisFirehose::", "AWS::Logs::Delivery")) for r in RESOURCES.values())
        ),
    ),
    Withheld(
        (
            "codedeploy:RegisterOnPremisesInstance",
            "codedeploy:GetApplicationRevision",
            "codedeploy:RegisterApplicationRevision",
        ),
        "only for EC2 and on-premises deployments, which deploy revisions to instances: the "
        "deployment groups shift Lambda aliases",
        lambda: all(p.get("ComputePlatform") == "Lambda" for p in properties_of("AWS::CodeDeploy::Application")),
    ),
)

# What the schemas list that is not an IAM action at all (an API or storage operation's
# name); the Service Authorization Reference does not know it, which the test checks.
NOT_IAM_ACTIONS = {
    "apigateway:TagResource": "API Gateway authorises by HTTP verb: tags are POST and DELETE on /tags/<arn>",
    "apigateway:UntagResource": "API Gateway authorises by HTTP verb: tags are POST and DELETE on /tags/<arn>",
    "s3:GetObjectMetadata": "HeadObject, which s3:GetObject authorises",
    "s3:REST.PUT.OBJECT": "an S3 server access log operation name",
    # Named by the function schema, not (yet) by IAM's reference: a policy naming it draws
    # cfn-lint's W3037. Granted once IAM knows it (this test then fails).
    "lambda:AssociateRuntimeAlias": "unknown to IAM's Service Authorization Reference",
}

# Needed beyond the schemas: an HTTP API stage with access logs makes a log delivery, which
# API Gateway makes with its caller's permissions (API Gateway's "Logging HTTP API" page);
# and API Gateway's tags, by verb (see NOT_IAM_ACTIONS).
BEYOND_SCHEMAS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "AWS::ApiGatewayV2::Stage": (
        ("logs:CreateLogDelivery", None),
        ("logs:GetLogDelivery", None),
        ("logs:UpdateLogDelivery", None),
        ("logs:DeleteLogDelivery", None),
        ("logs:ListLogDeliveries", None),
        ("logs:PutResourcePolicy", None),
        ("logs:DescribeResourcePolicies", None),
        ("logs:DescribeLogGroups", None),
        ("apigateway:POST", f"arn:aws:apigateway:{REGION}::/tags/{API.replace('/', '%2F')}"),
        ("apigateway:DELETE", f"arn:aws:apigateway:{REGION}::/tags/{API.replace('/', '%2F')}"),
    ),
}


@dataclass(frozen=True)
class Need:
    kind: str
    operation: str
    action: str
    where: tuple[tuple[str, str], ...]  # (name, ARN) it must be allowed on; empty: on some resource

    def __str__(self) -> str:
        on = ", ".join(name for name, _ in self.where[:3]) + (" ..." if len(self.where) > 3 else "")
        return f"{self.action} ({self.kind} {self.operation}{', on ' + on if on else ''})"


def where_needed(kind: str, logical_ids: list[str], action: str) -> tuple[tuple[str, str], ...]:
    """The resources `action` acts on for a resource of `kind`: the resource itself when the
    action applies to its kind of ARN, else every resource of the stack (or what it reads)
    whose ARN the action applies to; none when it applies to "*" only."""
    patterns = action_arn_patterns(action)
    if not patterns:
        return ()
    own = [(logical, SAMPLES[logical]) for logical in logical_ids if logical in SAMPLES]
    if own and all(any(p.fullmatch(a) for p in patterns) for _, a in own):
        return tuple(own)
    return tuple((name, a) for name, a in SAMPLES.items() if any(p.fullmatch(a) for p in patterns))


def needs() -> list[Need]:
    by_kind: dict[str, list[str]] = {}
    for logical, resource in RESOURCES.items():
        by_kind.setdefault(resource["Type"], []).append(logical)
    found = []
    for kind, logical_ids in sorted(by_kind.items()):
        for operation, actions in handler_permissions(kind).items():
            for action in sorted(set(actions)):
                if action in NOT_IAM_ACTIONS or any(w.covers(kind, action) for w in WITHHELD):
                    continue
                found.append(Need(kind, operation, action, where_needed(kind, logical_ids, action)))
        for action, on in BEYOND_SCHEMAS.get(kind, ()):
            found.append(Need(kind, "create", action, (("the stage's access log delivery", on),) if on else ()))
    return found


NEEDS = needs()


def lacking(statements: list[Statement]) -> list[str]:
    """What the statements do not allow, one line per action: the resource types and handler
    operations that need it, and the resources it is missing on."""
    uses: dict[str, set[str]] = {}
    resources: dict[str, set[str]] = {}
    for need in NEEDS:
        places = need.where or (("any resource", None),)
        missed = [name for name, where in places if not allows(statements, need.action, where)]
        if missed:
            uses.setdefault(need.action, set()).add(f"{need.kind} {need.operation}")
            resources.setdefault(need.action, set()).update(missed)
    lines = []
    for action in sorted(uses):
        names = sorted(resources[action])
        on = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
        lines.append(f"{action} for {', '.join(sorted(uses[action]))}; on {on}")
    return lines


def test_the_stack_is_read_as_cloudformation_receives_it() -> None:
    kinds = {r["Type"] for r in RESOURCES.values()}

    assert not any(kind.startswith("AWS::Serverless::") for kind in kinds)
    assert {"AWS::Lambda::Alias", "AWS::CodeDeploy::DeploymentGroup", "AWS::Lambda::EventSourceMapping"} <= kinds
    assert all(kind in SAMPLE_ARNS for kind in kinds), kinds - set(SAMPLE_ARNS)
    assert len(NEEDS) > 150


def test_the_execution_role_grants_every_permission_the_stacks_resource_types_need() -> None:
    missing = lacking(EXECUTION_ROLE)

    assert not missing, "the execution role lacks:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("withheld", WITHHELD, ids=lambda w: w.actions[0])
def test_what_the_role_withholds_the_template_does_not_need_and_the_role_does_not_grant(withheld: Withheld) -> None:
    assert withheld.holds(), withheld.reason
    for action in withheld.actions:
        if action.endswith(":*") or withheld.kinds:
            continue  # a family, or an action the role grants for other resource types
        assert not allows(EXECUTION_ROLE, action), action


def test_what_the_schemas_list_that_is_no_iam_action_is_unknown_to_the_service_reference() -> None:
    for action in NOT_IAM_ACTIONS:
        assert not is_known_action(action), action


def test_the_check_finds_a_permission_the_role_lacks() -> None:
    without = [s for s in EXECUTION_ROLE if not s.matches_action("events:ListTargetsByRule")]

    assert any("events:ListTargetsByRule" in line for line in lacking(without))


# -- the role cannot make a role stronger than the stack's own ------------------------------


def statements_allowing(action: str) -> list[Statement]:
    return [s for s in EXECUTION_ROLE if s.effect == "Allow" and s.matches_action(action)]


# The role writes IAM checks against a role's boundary (iam:PermissionsBoundary); the other
# role actions (reads, tags, trust policy, delete) cannot change what a bounded role may do.
ROLE_WRITES = (
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
)


@pytest.mark.parametrize("action", ROLE_WRITES)
def test_every_role_the_execution_role_creates_or_changes_carries_the_boundary(action: str) -> None:
    granting = statements_allowing(action)

    assert granting, action
    for statement in granting:
        assert statement.conditions.get("StringEquals", {}).get("iam:PermissionsBoundary") == BOUNDARY_ARN, statement


def managed_policies_of_the_stack() -> set[str]:
    resolver = app_resolver()
    return {
        str(resolver.resolve(policy))
        for r in RESOURCES.values()
        if r["Type"] == "AWS::IAM::Role"
        for policy in r["Properties"].get("ManagedPolicyArns", [])
    }


@pytest.mark.parametrize("action", ["iam:AttachRolePolicy", "iam:DetachRolePolicy"])
def test_roles_get_only_the_managed_policies_the_template_names(action: str) -> None:
    for statement in statements_allowing(action):
        allowed = statement.conditions.get("ArnEquals", {}).get("iam:PolicyARN")
        assert sorted(allowed or []) == sorted(managed_policies_of_the_stack()), statement


def test_roles_are_passed_only_to_lambda_and_codedeploy() -> None:
    for statement in statements_allowing("iam:PassRole"):
        assert sorted(statement.conditions["StringEquals"]["iam:PassedToService"]) == [
            "codedeploy.amazonaws.com",
            "lambda.amazonaws.com",
        ]


@pytest.mark.parametrize("role", ["PackageRole", "DeployRole", "CloudFormationExecutionRole"])
def test_the_pipelines_own_roles_cannot_be_changed_by_the_execution_role(role: str) -> None:
    own = PIPELINE_RESOLVER.attributes[f"{role}.Arn"]

    for action in (*ROLE_WRITES, "iam:DeleteRole", "iam:PassRole"):
        assert not allows(EXECUTION_ROLE, action, own), (action, own)


def test_the_boundary_itself_cannot_be_changed_or_removed() -> None:
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert not allows(EXECUTION_ROLE, action, BOUNDARY_ARN), action
    assert not allows(EXECUTION_ROLE, "iam:DeleteRolePermissionsBoundary")


# -- the boundary holds what the stack's roles do -------------------------------------------

# What the AWS managed policies the template attaches let its roles do (AWS's policy
# documents), with the resources of the stack they do it on (fnmatch patterns of logical ids;
# None: an action that applies to no resource).
FUNCTION_LOGS = (("logs:CreateLogGroup", "FunctionLogGroup"), ("logs:CreateLogStream", "FunctionLogGroup"),
                 ("logs:PutLogEvents", "FunctionLogGroup"))  # fmt: skip
MANAGED_POLICY_ACTIONS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "AWSLambdaBasicExecutionRole": FUNCTION_LOGS,
    "AWSXrayWriteOnlyAccess": (
        ("xray:PutTraceSegments", None),
        ("xray:PutTelemetryRecords", None),
        ("xray:GetSamplingRules", None),
        ("xray:GetSamplingTargets", None),
        ("xray:GetSamplingStatisticSummaries", None),
    ),
    "AWSLambdaSQSQueueExecutionRole": (
        *FUNCTION_LOGS,
        ("sqs:ReceiveMessage", "*Queue"),
        ("sqs:DeleteMessage", "*Queue"),
        ("sqs:GetQueueAttributes", "*Queue"),
    ),
    # CodeDeploy's: it moves aliases and reads the rollback alarms (it also may publish to SNS
    # for deployment triggers and invoke hook functions: the groups have neither).
    "AWSCodeDeployRoleForLambda": (
        ("lambda:GetAlias", "*Aliaslive"),
        ("lambda:UpdateAlias", "*Aliaslive"),
        ("lambda:GetProvisionedConcurrencyConfig", "*Aliaslive"),
        ("cloudwatch:DescribeAlarms", "*RollbackAlarm"),
    ),
}


def test_the_boundary_allows_what_every_role_of_the_stack_does() -> None:
    boundary = managed_policy_statements(PIPELINE_RESOLVER, "PermissionsBoundary")
    resolver = app_resolver()
    missing = []
    for logical, resource in RESOURCES.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resolver.resolve(resource["Properties"])
        for policy in properties.get("Policies", []):
            for raw in policy["PolicyDocument"]["Statement"]:
                statement = Statement.of(raw)
                for action in statement.actions:
                    refused = [r for r in statement.resources if not allows(boundary, action, r)]
                    missing += [f"{logical}: {action} on {r}" for r in refused]
        for managed in properties.get("ManagedPolicyArns", []):
            name = managed.rsplit("/", 1)[-1]
            for action, on in MANAGED_POLICY_ACTIONS[name]:
                where = [a for n, a in SAMPLES.items() if fnmatch.fnmatchcase(n, on)] if on else [None]
                assert where, (name, action, on)
                refused = [a or "no resource" for a in where if not allows(boundary, action, a)]
                missing += [f"{logical}: {action} on {a} ({name})" for a in refused]

    assert not missing, "the boundary would take from the stack's roles:\n  " + "\n  ".join(sorted(set(missing)))
