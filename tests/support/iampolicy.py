"""IAM, read offline: the permissions CloudFormation's resource handlers need (the resource
schemas cfn-lint ships, `cfnlint/data/schemas/resources/`), the resource types each IAM
action applies to and their ARN formats (cfn-lint's `AdditionalSpecs/Policies.json`, from
AWS's Service Authorization Reference), the policies of infra/pipeline.yaml with their
intrinsic functions resolved, and whether a set of statements allows an action on an ARN.

The evaluator answers "could these statements allow it": an Allow whose action and resource
patterns match, and no unconditional Deny that matches. Conditions on an Allow are assumed
to be met (tests/unit/test_deploy_role.py checks the conditions themselves); a Deny with a
condition is assumed to apply only when it is met, so it does not take an action away here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HANDLER_OPERATIONS = ("create", "read", "update", "delete")


def _cfnlint_data() -> Path:
    import cfnlint

    return Path(cfnlint.__file__).parent / "data"


@functools.cache
def resource_schemas() -> dict[str, dict[str, Any]]:
    """Every resource schema cfn-lint ships, by type name (files are named by content hash)."""
    found: dict[str, dict[str, Any]] = {}
    for path in (_cfnlint_data() / "schemas" / "resources").glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(schema, dict) and "typeName" in schema:
            found[schema["typeName"]] = schema
    return found


def handler_permissions(type_name: str) -> dict[str, list[str]]:
    """The permissions CloudFormation's handlers for `type_name` call with, per operation.
    Read is included: create and update handlers end by reading the resource back."""
    handlers = resource_schemas()[type_name].get("handlers", {})
    return {op: list(handlers.get(op, {}).get("permissions", [])) for op in HANDLER_OPERATIONS}


@functools.cache
def _service_reference() -> dict[str, Any]:
    reference: dict[str, Any] = json.loads(
        (_cfnlint_data() / "AdditionalSpecs" / "Policies.json").read_text(encoding="utf-8")
    )
    return reference


def is_known_action(action: str) -> bool:
    """Whether the Service Authorization Reference knows `service:Action` as an IAM action."""
    service, _, name = action.partition(":")
    return name.lower() in _service_reference().get(service, {}).get("Actions", {})


def action_arn_patterns(action: str) -> list[re.Pattern[str]]:
    """The ARN formats of the resource types `action` applies to, as regular expressions;
    empty when it applies to "*" only (or is unknown)."""
    service, _, name = action.partition(":")
    entry = _service_reference().get(service, {})
    types = entry.get("Actions", {}).get(name.lower(), {}).get("Resources", [])
    patterns = []
    for resource_type in types:
        for arn_format in entry.get("Resources", {}).get(resource_type.lower(), {}).get("ARNFormats", []):
            regex = re.sub(r"\$\{(Partition|Region|Account)\}", "[^:]*", arn_format)
            regex = re.sub(r"\$\{[^}]+\}", ".*", regex)
            patterns.append(re.compile(regex))
    return patterns


def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, 0 if case_sensitive else re.IGNORECASE)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Any] = field(default_factory=dict)
    sid: str = ""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Statement:
        if "NotAction" in raw or "NotResource" in raw:
            raise ValueError(f"NotAction/NotResource are not read by this evaluator: {raw}")
        return cls(
            effect=raw["Effect"],
            actions=tuple(_listed(raw["Action"])),
            resources=tuple(_listed(raw["Resource"])),
            conditions=dict(raw.get("Condition", {})),
            sid=raw.get("Sid", ""),
        )

    def matches_action(self, action: str) -> bool:
        return any(_wildcard(a, case_sensitive=False).fullmatch(action) for a in self.actions)

    def matches_resource(self, arn: str) -> bool:
        return any(_wildcard(r, case_sensitive=True).fullmatch(arn) for r in self.resources)


def allows(statements: Iterable[Statement], action: str, arn: str | None = None) -> bool:
    """Whether the statements could allow `action` on `arn` (on some resource when None)."""
    listed = list(statements)

    def on(statement: Statement) -> bool:
        return arn is None or statement.matches_resource(arn)

    denied = any(
        s.effect == "Deny" and not s.conditions and s.matches_action(action) and on(s)
        for s in listed
        if arn is not None or "*" in s.resources
    )
    allowed = any(s.effect == "Allow" and s.matches_action(action) and on(s) for s in listed)
    return allowed and not denied


# -- CloudFormation intrinsics, resolved for one set of parameters -----------------------


@dataclass
class Resolver:
    """Resolves the intrinsic functions of one template for given parameters, pseudo
    parameters and physical names (`names`: logical id -> Ref value; `attributes`:
    "LogicalId.Attribute" -> value)."""

    template: dict[str, Any]
    parameters: dict[str, str]
    names: dict[str, str]
    attributes: dict[str, str]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:  # noqa: C901 - one branch per intrinsic
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref":
                if argument == "AWS::NoValue":
                    return _NO_VALUE
                if argument in self.parameters:
                    return self.parameters[argument]
                return self.names[argument]
            if name == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attributes[f"{logical}.{attribute}"]
            if name == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                local = {k: self.resolve(v) for k, v in variables.items()}
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(local.get(m.group(1)) or self._sub(m.group(1))), text)
            if name == "Fn::If":
                condition, yes, no = argument
                return self.resolve(yes if self.condition(condition) else no)
            if name == "Fn::Equals":
                left, right = (self.resolve(a) for a in argument)
                return left == right
            if name == "Fn::Not":
                return not self.resolve(argument[0])
            if name == "Fn::And":
                return all(self.resolve(a) for a in argument)
            if name == "Fn::Or":
                return any(self.resolve(a) for a in argument)
            if name == "Condition":
                return self.condition(argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _sub(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if "." in name:
            return self.attributes[name]
        return self.names[name]


class _NoValue:
    """AWS::NoValue: the property or list item is left out."""


_NO_VALUE = _NoValue()


def role_statements(resolver: Resolver, role: str) -> list[Statement]:
    """Every statement of a role's inline policies, resolved."""
    properties = resolver.resolve(resolver.template["Resources"][role]["Properties"])
    return [
        Statement.of(raw)
        for policy in properties.get("Policies", [])
        for raw in _listed(policy["PolicyDocument"]["Statement"])
    ]


def managed_policy_statements(resolver: Resolver, policy: str) -> list[Statement]:
    """Every statement of a managed policy resource of the template, resolved."""
    properties = resolver.resolve(resolver.template["Resources"][policy]["Properties"])
    return [Statement.of(raw) for raw in _listed(properties["PolicyDocument"]["Statement"])]
