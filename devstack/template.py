"""Reads infra/template.yaml: routes, queue event sources, function settings, and the part
of the template (tables and queues) that a local AWS can create."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"
BACKING_TYPES = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy")
DEFAULT_TIMEOUT_SECONDS = 3.0  # Lambda's, for a function whose template gives none


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation's short tags (`!Ref`, `!GetAtt`, ...)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return template


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS  # the function's Timeout: Lambda stops it then


@dataclass(frozen=True)
class Route:
    method: str  # an HTTP method or ANY
    path: str  # API Gateway syntax: /configs/webhook/{id}, or $default
    function: Function


@dataclass(frozen=True)
class QueueSource:
    queue_logical_id: str
    function: Function
    batch_size: int
    report_failures: bool
    max_concurrency: int | None


@dataclass(frozen=True)
class ScheduleSource:
    name: str
    function: Function
    period_seconds: float


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float:
    """The period of an EventBridge `rate(...)` expression; ValueError for anything else."""
    found = _RATE.match(expression.strip())
    if not found:
        raise ValueError(f"only rate(...) schedules run locally, not {expression!r}")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


def functions(template: dict[str, Any]) -> list[Function]:
    globals_ = template.get("Globals", {}).get("Function", {})
    base_env = dict(globals_.get("Environment", {}).get("Variables", {}))
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = dict(base_env)
        env.update(props.get("Environment", {}).get("Variables", {}))
        found.append(
            Function(
                logical_id=logical_id,
                code_dir=(TEMPLATE_PATH.parent / props["CodeUri"]).resolve(),
                handler=props.get("Handler", globals_.get("Handler", "app.handler")),
                environment=env,
                events=props.get("Events", {}),
                timeout_seconds=float(props.get("Timeout", globals_.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            )
        )
    return found


def routes(template: dict[str, Any]) -> list[Route]:
    return [
        Route(method=str(e["Properties"]["Method"]).upper(), path=e["Properties"]["Path"], function=f)
        for f in functions(template)
        for e in f.events.values()
        if e["Type"] == "HttpApi"
    ]


def queue_sources(template: dict[str, Any]) -> list[QueueSource]:
    sources = []
    for f in functions(template):
        for e in f.events.values():
            if e["Type"] != "SQS":
                continue
            props = e["Properties"]
            queue = props["Queue"]
            logical = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else str(queue)
            sources.append(
                QueueSource(
                    queue_logical_id=logical,
                    function=f,
                    batch_size=int(props.get("BatchSize", 10)),
                    report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    max_concurrency=props.get("ScalingConfig", {}).get("MaximumConcurrency"),
                )
            )
    return sources


def schedules(template: dict[str, Any]) -> list[ScheduleSource]:
    return [
        ScheduleSource(name=name, function=f, period_seconds=rate_seconds(e["Properties"]["Schedule"]))
        for f in functions(template)
        for name, e in f.events.items()
        if e["Type"] in ("Schedule", "ScheduleV2")
    ]


def backing_template(template: dict[str, Any]) -> dict[str, Any]:
    """The tables and queues of the template, as a plain CloudFormation template."""
    resources = {k: v for k, v in template["Resources"].items() if v["Type"] in BACKING_TYPES}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": template.get("Parameters", {}),
        "Conditions": template.get("Conditions", {}),
        "Resources": resources,
    }


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """Resolve `Ref` against parameters and physical ids; other intrinsics are not needed
    by function settings and are refused, so a new one cannot be silently mis-resolved."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        if any(k == "Ref" or k.startswith("Fn::") for k in value):
            raise ValueError(f"the local stack cannot resolve {value!r}")
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value
