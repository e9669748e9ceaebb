"""The runbook's commands (docs/operations.md): roll functions back, stop and restart
deliveries (the kill switch), restore the table to a point in time and copy items back.
Control-plane calls on the stack's own resources, found through CloudFormation; each takes
its boto3 clients, so the tests run them on moto and the operator CLI on AWS."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ALIAS = "live"  # infra/template.yaml's AutoPublishAlias
IN_PROGRESS = ["Created", "Queued", "InProgress", "Ready", "Baking"]
WAIT_SECONDS = 60.0  # the longest a kill switch waits for its event sources to settle


class RunbookError(Exception):
    """A command that cannot do what it was asked; its message says why."""


def stack_resources(cloudformation: Any, stack: str, kind: str) -> dict[str, str]:
    """Logical id -> physical id of the stack's resources of one type."""
    found: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == kind and resource.get("PhysicalResourceId"):
                found[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    return found


# -- the kill switch: the deliver function's queue event sources -----------------------------


@dataclass(frozen=True)
class EventSource:
    logical_id: str  # e.g. DeliverFunctionJobs: the lane's event source as the template names it
    uuid: str
    state: str  # Lambda's: Enabled, Disabling, Disabled, Enabling, ...
    queue: str


def event_sources(cloudformation: Any, lambda_client: Any, stack: str) -> list[EventSource]:
    found = []
    for logical_id, uuid in sorted(stack_resources(cloudformation, stack, "AWS::Lambda::EventSourceMapping").items()):
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        found.append(EventSource(logical_id, uuid, mapping["State"], mapping["EventSourceArn"].rsplit(":", 1)[-1]))
    return found


def switch_deliveries(
    cloudformation: Any,
    lambda_client: Any,
    stack: str,
    enabled: bool,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EventSource]:
    """Pause (enabled=False) or resume every queue event source of the stack. Paused, jobs
    stay in their queues (kept 14 days; a job's attempt is not used up) and the deliver
    function stops being invoked; resumed, Lambda picks them up again. With `wait`, returns
    once each says Enabled or Disabled (at most WAIT_SECONDS)."""
    sources = event_sources(cloudformation, lambda_client, stack)
    if not sources:
        raise RunbookError(f"stack {stack} has no event source mappings")
    for source in sources:
        lambda_client.update_event_source_mapping(UUID=source.uuid, Enabled=enabled)
    target = "Enabled" if enabled else "Disabled"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        sources = event_sources(cloudformation, lambda_client, stack)
        if not wait or all(s.state == target for s in sources):
            return sources
        if time.monotonic() > deadline:
            raise RunbookError(f"event sources not {target} after {WAIT_SECONDS:.0f} s: {sources}")
        sleep(2)


# -- rolling back -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasMove:
    function: str  # logical id
    name: str  # physical name
    was: str  # version the alias pointed at
    to: str  # version it points at now (the same when nothing could move)


def stop_deployments(cloudformation: Any, codedeploy: Any, stack: str) -> list[str]:
    """Stop every deployment of the stack's functions still in progress, with CodeDeploy's
    rollback: each alias goes back to its previous version, and CloudFormation, seeing the
    alias update fail, rolls the whole stack update back. Returns the deployment ids."""
    applications = list(stack_resources(cloudformation, stack, "AWS::CodeDeploy::Application").values())
    groups = list(stack_resources(cloudformation, stack, "AWS::CodeDeploy::DeploymentGroup").values())
    stopped = []
    for application in applications:
        for group in groups:
            for page in codedeploy.get_paginator("list_deployments").paginate(
                applicationName=application, deploymentGroupName=group, includeOnlyStatuses=IN_PROGRESS
            ):
                for deployment in page["deployments"]:
                    codedeploy.stop_deployment(deploymentId=deployment, autoRollbackEnabled=True)
                    stopped.append(deployment)
    return stopped


def _versions(lambda_client: Any, name: str) -> list[int]:
    versions: list[int] = []
    for page in lambda_client.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        versions += [int(v["Version"]) for v in page["Versions"] if v["Version"].isdigit()]
    return sorted(versions)


def roll_back(
    cloudformation: Any,
    lambda_client: Any,
    stack: str,
    functions: list[str] | None = None,
    to_version: str | None = None,
    dry_run: bool = False,
) -> list[AliasMove]:
    """Point each function's live alias (or the named functions') at the version published
    before the one it points at now (`to_version`: that one, for one function), all traffic.
    The versions are kept by the stack (SAM retains them), so the previous code is there."""
    names = stack_resources(cloudformation, stack, "AWS::Lambda::Function")
    chosen = functions or sorted(names)
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise RunbookError(f"not functions of {stack}: {', '.join(unknown)} (it has {', '.join(sorted(names))})")
    if to_version is not None and len(chosen) != 1:
        raise RunbookError("--to-version names the version of one function: give exactly one --function")
    moves = []
    for logical_id in chosen:
        name = names[logical_id]
        was = str(lambda_client.get_alias(FunctionName=name, Name=ALIAS)["FunctionVersion"])
        earlier = [v for v in _versions(lambda_client, name) if was.isdigit() and v < int(was)]
        to = to_version or (str(earlier[-1]) if earlier else was)
        if to_version is not None and int(to_version) not in _versions(lambda_client, name):
            raise RunbookError(f"{logical_id} has no version {to_version}")
        if to != was and not dry_run:
            lambda_client.update_alias(
                FunctionName=name, Name=ALIAS, FunctionVersion=to, RoutingConfig={"AdditionalVersionWeights": {}}
            )
        moves.append(AliasMove(logical_id, name, was, to))
    return moves


# -- point-in-time restore --------------------------------------------------------------------


def restore_table(
    dynamodb: Any,
    table: str,
    to: dt.datetime | None,
    target: str | None = None,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    timeout_seconds: float = 6 * 3600,
) -> str:
    """Restore the table as it was at `to` (None: the latest restorable time) into a new
    table, and return its name. The live table is not touched: what to take from the copy is
    the operator's choice (`copy_items`). DynamoDB restores items and indexes, not the TTL,
    point-in-time recovery or tags: the copy is for reading."""
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    recovery = backups.get("PointInTimeRecoveryDescription", {})
    if recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise RunbookError(f"point-in-time recovery is not on for {table}")
    earliest, latest = recovery.get("EarliestRestorableDateTime"), recovery.get("LatestRestorableDateTime")
    if to is not None and earliest is not None and latest is not None and not earliest <= to <= latest:
        raise RunbookError(f"{table} can be restored to {earliest.isoformat()} .. {latest.isoformat()}, not {to}")
    stamp = (to or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    name = target or f"{table}-restored-{stamp}"
    when: dict[str, Any] = {"RestoreDateTime": to} if to is not None else {"UseLatestRestorableTime": True}
    dynamodb.restore_table_to_point_in_time(SourceTableName=table, TargetTableName=name, **when)
    deadline = time.monotonic() + timeout_seconds
    while wait and dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RunbookError(f"{name} not active after {timeout_seconds:.0f} s; it is still being restored")
        sleep(10)
    return name


@dataclass
class Copied:
    read: int = 0
    written: int = 0
    kept: int = 0  # present in the live table and left as it is (missing_only)


def _items(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page["Items"]


def copy_items(dynamodb: Any, source: str, table: str, missing_only: bool = True, dry_run: bool = False) -> Copied:
    """Copy the restored table's items into the live one: those the live table lacks
    (`missing_only`: what was deleted since), or every one (what was changed since goes back
    too; what was created since stays). Items are copied as stored, whatever their kind."""
    key_names = [k["AttributeName"] for k in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
    absent = " AND ".join(f"attribute_not_exists(#k{n})" for n in range(len(key_names)))
    names = {f"#k{n}": name for n, name in enumerate(key_names)}
    copied = Copied()
    for item in _items(dynamodb, source):
        copied.read += 1
        if dry_run:
            continue
        request: dict[str, Any] = {"TableName": table, "Item": item}
        if missing_only:
            request.update(ConditionExpression=absent, ExpressionAttributeNames=names)
        try:
            dynamodb.put_item(**request)
        except dynamodb.exceptions.ConditionalCheckFailedException:
            copied.kept += 1
            continue
        copied.written += 1
    return copied
