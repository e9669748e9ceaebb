"""docs/openapi.yaml as a contract: the documented schema of any operation's response."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
URI = "urn:ricloud-webhooks:openapi"


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    """The JSON schema documented for `method path` answering `status`; KeyError if none."""
    operation = document()["paths"][path][method.lower()]
    response = _resolve(operation["responses"][str(status)])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def check_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """The ways `body` breaks the document (empty when it conforms)."""
    registry: Registry[Any] = Registry().with_resource(URI, DRAFT202012.create_resource(document()))
    schema = {"$ref": URI + "#/components/schemas/Error"} if status >= 400 else None
    if schema is None:
        local = response_schema(method, path, status)
        schema = {"$ref": URI + local["$ref"]} if "$ref" in local else _rebase(local)
    validator = Draft202012Validator(schema, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}" for e in validator.iter_errors(body)]


def _rebase(node: Any) -> Any:
    """A schema inlined in an operation, with its local references made absolute."""
    if isinstance(node, dict):
        return {k: (URI + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node
