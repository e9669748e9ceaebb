"""docs/openapi.yaml is a valid OpenAPI 3.1 document and names exactly the template's routes."""

from __future__ import annotations

from openapi_spec_validator import validate

from devstack.template import load_template, routes
from tests.openapi import check_response, document


def test_openapi_document_is_valid() -> None:
    validate(document())


# The console's routes serve HTML, CSS and JavaScript to a browser, not JSON to API clients:
# they are not operations of the API the document describes (docs/console.md).
CONSOLE_ROUTES = {"GET /console", "GET /console/{proxy+}"}


def test_openapi_operations_are_the_template_routes() -> None:
    documented = {
        f"{method.upper()} {path}"
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    deployed = {f"{r.method} {r.path}" for r in routes(load_template()) if r.path != "$default"}

    assert documented == deployed - CONSOLE_ROUTES


def test_the_routes_left_out_of_the_document_are_the_consoles_alone() -> None:
    console = {f"{r.method} {r.path}": r.function.logical_id for r in routes(load_template())}

    assert {key: console[key] for key in CONSOLE_ROUTES} == dict.fromkeys(CONSOLE_ROUTES, "ConsoleFunction")
    assert not any(path.startswith("/console") for path in document()["paths"])


def test_check_response_finds_a_body_that_breaks_the_document() -> None:
    problems = check_response("GET", "/key", 200, {"id": "k", "resource": "key"})

    assert problems
    assert check_response("GET", "/key", 401, {"error": "unauthorized", "message": "No."}) == []
