"""Least privilege, checked: the IAM actions each AWS call needs, each function's grants read
from the template, and a recorder of the calls a function makes while it runs.

A grant is `(IAM action, resource)`, the resource named by its logical id in the template:
`Table`, `Table/index/<IndexName>`, `DeliveryQueue`, or `Table[LIMIT#*]` for the partitions an
`dynamodb:LeadingKeys` condition allows (the organisations' rates, which every API function
writes and nothing else of the table). Every function's `Policies` in infra/template.yaml, or
the inline policies of the role of its own it names (`Role: !GetAtt X.Arn`), are statements
whose resources are written as `!GetAtt X.Arn` or `!Sub "${X.Arn}/index/<IndexName>"`;
anything else (a SAM policy template, a wildcard, a managed policy other than Lambda's own for
logs and traces) is refused by `grants_of`, so a policy the check cannot read is never
silently trusted.

A function with an SQS event source has a role of its own: SAM would give the role it makes
AWS's managed `AWSLambdaSQSQueueExecutionRole`, which receives and deletes on every queue of
the account. What Lambda's poller does with the role (`POLLER_ACTIONS` on the event sources'
queues) is granted apart (`poller_grants`), since the function's code never does it.

The recorder wraps botocore's `BaseClient._make_api_call`, the one method every client call
goes through, and attributes each call to the function whose invocation is running (a
context variable set by `RecordingFunctions.invoke`, carried into the thread pools the
invocation submits work to). Calls made outside an invocation (the local stack's own
pollers, the tests' fixtures) are not attributed to anyone and are not checked.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.runtime import Functions
from devstack.template import Function

Grant = tuple[str, str]  # (IAM action, resource logical id)

# The one mapping from API operations to the IAM actions they need. A transaction needs, on
# its table, the action of each kind of item it holds (there is no TransactWriteItems action).
OPERATIONS: dict[tuple[str, str], str] = {
    ("dynamodb", "GetItem"): "dynamodb:GetItem",
    ("dynamodb", "BatchGetItem"): "dynamodb:BatchGetItem",
    ("dynamodb", "PutItem"): "dynamodb:PutItem",
    ("dynamodb", "UpdateItem"): "dynamodb:UpdateItem",
    ("dynamodb", "DeleteItem"): "dynamodb:DeleteItem",
    ("dynamodb", "BatchWriteItem"): "dynamodb:BatchWriteItem",
    ("dynamodb", "Query"): "dynamodb:Query",
    ("dynamodb", "Scan"): "dynamodb:Scan",
    ("sqs", "SendMessage"): "sqs:SendMessage",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "ReceiveMessage"): "sqs:ReceiveMessage",
    ("sqs", "DeleteMessage"): "sqs:DeleteMessage",
}
TRANSACT_ITEMS: dict[str, str] = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
TRANSACT_GET_ITEMS: dict[str, str] = {"Get": "dynamodb:GetItem"}

# Partitions granted apart by a `dynamodb:LeadingKeys` condition: a call on an item whose
# partition key starts with one of these needs the grant on `<table>[<prefix>*]`.
LEADING_KEY_PREFIXES = ("LIMIT#",)
# What Lambda's SQS event source does with the function's role (AWS's documented minimum).
POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# The managed policies a function's own role may hold: Lambda's logs, and X-Ray's traces
# (what SAM gives the roles it makes; neither reaches the table or the queues).
PLATFORM_POLICIES = (
    "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess",
)


class PolicyError(ValueError):
    """A function's policy that this check cannot read exactly."""


def required(service: str, operation: str, params: dict[str, Any], names: dict[str, str]) -> set[Grant]:
    """The grants one API call needs. `names` maps physical names (table names, queue URLs)
    to logical ids. An operation missing from the mapping needs `unmapped:<service>:<op>`,
    a grant no policy gives, so the check names it instead of passing it by."""

    def logical(physical: Any) -> str:
        return names.get(str(physical), f"unknown:{physical}")

    if operation in ("TransactWriteItems", "TransactGetItems"):
        kinds = TRANSACT_ITEMS if operation == "TransactWriteItems" else TRANSACT_GET_ITEMS
        found = set()
        for item in params.get("TransactItems", []):
            ((kind, body),) = item.items()
            found.add((kinds.get(kind, f"unmapped:{service}:{operation}.{kind}"), logical(body.get("TableName"))))
        return found
    action = OPERATIONS.get((service, operation), f"unmapped:{service}:{operation}")
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return {(action, logical(table)) for table in params.get("RequestItems", {})}
        table = logical(params.get("TableName"))
        index = params.get("IndexName")
        return {(action, f"{table}/index/{index}" if index else _partitioned(table, params))}
    if service == "sqs":
        return {(action, logical(params.get("QueueUrl")))}
    return {(action, service)}


def _partitioned(table: str, params: dict[str, Any]) -> str:
    """`table`, or `table[<prefix>*]` when the call's item is in a partition granted apart."""
    key = params.get("Key") or params.get("Item") or {}
    partition = key.get("PK", {}).get("S", "") if isinstance(key.get("PK"), dict) else ""
    for prefix in LEADING_KEY_PREFIXES:
        if partition.startswith(prefix):
            return f"{table}[{prefix}*]"
    return table


def _resource_of(value: Any, where: str) -> str:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        parts = target.split(".") if isinstance(target, str) else list(target)
        if len(parts) == 2 and parts[1] == "Arn":
            return str(parts[0])
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text: str = value["Fn::Sub"]
        if text.startswith("${") and text.count("${") == 1 and ".Arn}/index/" in text:
            name, _, index = text[2:].partition(".Arn}/index/")
            if index and "*" not in index:
                return f"{name}/index/{index}"
    raise PolicyError(f"{where}: write resources as !GetAtt X.Arn or !Sub ${{X.Arn}}/index/Name, not {value!r}")


def _leading_keys(statement: dict[str, Any], where: str) -> str:
    """The suffix a statement's condition puts on its resources: `[<prefix>*]` for exactly
    one `ForAllValues:StringLike` on `dynamodb:LeadingKeys` of a prefix granted apart."""
    condition = statement.get("Condition")
    if condition is None:
        return ""
    patterns = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys") if condition else None
    if (
        set(condition) != {"ForAllValues:StringLike"}
        or set(condition["ForAllValues:StringLike"]) != {"dynamodb:LeadingKeys"}
        or not isinstance(patterns, list)
        or len(patterns) != 1
        or patterns[0] not in {f"{p}*" for p in LEADING_KEY_PREFIXES}
    ):
        raise PolicyError(f"{where}: the only condition checked is dynamodb:LeadingKeys of {LEADING_KEY_PREFIXES}")
    return f"[{patterns[0]}]"


def _statement_grants(statement: dict[str, Any], where: str) -> set[Grant]:
    if statement.get("Effect") != "Allow" or set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}:
        raise PolicyError(f"{where}: only Allow statements of Action, Resource and Condition are checked")
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    suffix = _leading_keys(statement, where)
    grants: set[Grant] = set()
    for action in actions:
        if "*" in action:
            raise PolicyError(f"{where}: no wildcard actions ({action})")
        grants.update((action, _resource_of(r, where) + suffix) for r in resources)
    return grants


def _statements(resource: dict[str, Any], logical_id: str, template: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A function's policy statements: its `Policies`, or those of the role it names."""
    properties = resource.get("Properties", {})
    policies = properties.get("Policies", [])
    if "Role" in properties:
        if policies or template is None:
            raise PolicyError(f"{logical_id}: a function with a role of its own has no Policies of its own")
        role_id = _resource_of(properties["Role"], logical_id)
        role = template["Resources"].get(role_id, {})
        if role.get("Type") != "AWS::IAM::Role":
            raise PolicyError(f"{logical_id}: its Role {role_id} is not a role of the template")
        unknown = [p for p in role["Properties"].get("ManagedPolicyArns", []) if p not in _platform_policies()]
        if unknown:
            raise PolicyError(f"{role_id}: no managed policies but Lambda's logs and traces, not {unknown!r}")
        policies = [p.get("PolicyDocument", p) for p in role["Properties"].get("Policies", [])]
    for policy in policies:
        if not (isinstance(policy, dict) and "Statement" in policy):
            raise PolicyError(f"{logical_id}: only inline statements can be checked, not {policy!r}")
    return [statement for policy in policies for statement in policy["Statement"]]


def _platform_policies() -> list[Any]:
    return [{"Fn::Sub": arn} for arn in PLATFORM_POLICIES]


def all_grants_of(resource: dict[str, Any], logical_id: str, template: dict[str, Any] | None = None) -> set[Grant]:
    """Every grant of one function: its code's and its event sources' poller's."""
    grants: set[Grant] = set()
    for statement in _statements(resource, logical_id, template):
        grants |= _statement_grants(statement, f"{logical_id} {statement.get('Sid', '')}".strip())
    return grants


def _polled(resource: dict[str, Any], logical_id: str) -> set[str]:
    """The queues a function's SQS event sources read (Lambda's poller, with its role)."""
    events = resource.get("Properties", {}).get("Events", {}).values()
    return {_resource_of(e["Properties"]["Queue"], logical_id) for e in events if e.get("Type") == "SQS"}


def _is_poller_grant(grant: Grant, polled: set[str]) -> bool:
    return grant[0] in POLLER_ACTIONS and grant[1] in polled


def grants_of(resource: dict[str, Any], logical_id: str, template: dict[str, Any] | None = None) -> set[Grant]:
    """The grants of one function's code, read from its inline policy statements (or its
    role's): what Lambda's poller does with the role on the function's event sources' queues
    is not among them (a queue the code reads itself, such as the sweep's dead letters, is)."""
    polled = _polled(resource, logical_id)
    return {g for g in all_grants_of(resource, logical_id, template) if not _is_poller_grant(g, polled)}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def template_grants(template: dict[str, Any]) -> dict[str, set[Grant]]:
    """Every function's code's grants, by logical id."""
    return {
        logical_id: grants_of(resource, logical_id, template) for logical_id, resource in _functions(template).items()
    }


def poller_grants(template: dict[str, Any]) -> dict[str, set[Grant]]:
    """What each function's role lets Lambda's SQS poller do, by logical id."""
    found = {}
    for logical_id, resource in _functions(template).items():
        polled = _polled(resource, logical_id)
        found[logical_id] = {g for g in all_grants_of(resource, logical_id, template) if _is_poller_grant(g, polled)}
    return found


def event_source_queues(template: dict[str, Any]) -> dict[str, set[str]]:
    """The queues each function's SQS event sources read, by logical id."""
    return {logical_id: polled for logical_id, r in _functions(template).items() if (polled := _polled(r, logical_id))}


def physical_names(template: dict[str, Any], refs: dict[str, str]) -> dict[str, str]:
    """Physical name -> logical id, for the template's resources a local stack created."""
    return {str(refs[name]): name for name in template["Resources"] if refs.get(name)}


def environment_names(template: dict[str, Any], environment: dict[str, str]) -> dict[str, str]:
    """Physical name -> logical id, read from a function's environment: each variable the
    template sets to `!Ref <resource>` holds that resource's physical id (a worker process of
    the local stack knows its environment, not the stack's ids)."""
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    names = {}
    for variable, value in variables.items():
        is_resource = isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in template["Resources"]
        if is_resource and environment.get(variable):
            names[environment[variable]] = value["Ref"]
    return names


def ungranted(template: dict[str, Any], calls: Iterable[tuple[str, str, str]]) -> list[str]:
    """One line per recorded (function, action, resource) that the function's policy lacks."""
    grants = template_grants(template)
    problems = []
    for function, action, resource in sorted(set(calls)):
        if function not in grants:
            problems.append(f"{function} is not a function of infra/template.yaml (it called {action} on {resource})")
        elif (action, resource) not in grants[function]:
            hint = " (map the operation in devstack/iam.py)" if action.startswith("unmapped:") else ""
            problems.append(f"{function} called {action} on {resource}, which its policy does not grant{hint}")
    return problems


# -- recording ---------------------------------------------------------------------------

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)


class Recorder:
    """Records (function, action, resource) for every AWS call made inside an invocation;
    with a `sink`, appends each new one to that file as a JSON line (another process reads it)."""

    def __init__(self, names: dict[str, str], sink: Path | None = None) -> None:
        self.names = dict(names)
        self.sink = sink
        self.calls: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        function = _current.get()
        if function is None:
            return
        found = {(function, action, resource) for action, resource in required(service, operation, params, self.names)}
        with self._lock:
            new = found - self.calls
            self.calls |= new
            if new and self.sink is not None:
                with self.sink.open("a", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(list(call)) + "\n" for call in sorted(new))


_recorders: list[Recorder] = []
_installed = False
_install_lock = threading.Lock()


def install(recorder: Recorder) -> Callable[[], None]:
    """Start recording into `recorder`; returns the function that stops it."""
    global _installed
    with _install_lock:
        if not _installed:
            _patch()
            _installed = True
        _recorders.append(recorder)

    def uninstall() -> None:
        with _install_lock:
            if recorder in _recorders:
                _recorders.remove(recorder)

    return uninstall


def _patch() -> None:
    from botocore.client import BaseClient

    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        for recorder in list(_recorders):
            recorder.record(service, operation_name, api_params)
        return make_api_call(self, operation_name, api_params)

    BaseClient._make_api_call = recording  # type: ignore[attr-defined]

    # An invocation's work on a thread pool (the deliver function's batch) is still its own.
    submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit_in_context(
        self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    concurrent.futures.ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign,assignment]


@contextmanager
def invoking(logical_id: str) -> Iterator[None]:
    """Attribute the AWS calls made inside this block (and what it submits to thread pools)."""
    token = _current.set(logical_id)
    try:
        yield
    finally:
        _current.reset(token)


class RecordingFunctions(Functions):
    """The local stack's functions, each invocation's AWS calls attributed to its function."""

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        with invoking(function.logical_id):
            return super().invoke(function, event)


def functions_for(template: dict[str, Any], refs: dict[str, str], sink: str | None) -> Functions:
    """What `python -m devstack` runs: recording into `sink` when one is named
    (DEVSTACK_CALLS_FILE; the integration tests check it), plain functions otherwise."""
    if not sink:
        return Functions()
    install(Recorder(physical_names(template, refs), Path(sink)))
    return RecordingFunctions()


def read_calls(path: Path) -> set[tuple[str, str, str]]:
    """The calls a recording local stack wrote."""
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {(str(f), str(a), str(r)) for f, a, r in (json.loads(line) for line in lines if line.strip())}
