"""The local stack's route matching behaves as API Gateway's does for the template's routes."""

from __future__ import annotations

import pytest

from devstack.gateway import match
from devstack.template import Route, load_template, routes

ROUTES = routes(load_template())


@pytest.mark.parametrize(
    ("method", "path", "route", "params"),
    [
        ("GET", "/configs/webhook", "GET /configs/webhook", {}),
        ("GET", "/configs/webhook/abc", "GET /configs/webhook/{id}", {"id": "abc"}),
        ("POST", "/configs/webhook/abc/test", "POST /configs/webhook/{id}/test", {"id": "abc"}),
        ("DELETE", "/configs/webhook/abc", "DELETE /configs/webhook/{id}", {"id": "abc"}),
        ("GET", "/configs/webhook/", "ANY $default", {}),
        ("GET", "/configs/webhook//test", "ANY $default", {}),
        ("PUT", "/configs/webhook/abc", "ANY $default", {}),
        ("GET", "/nothing/here", "ANY $default", {}),
        ("GET", "/console", "GET /console", {}),
        ("GET", "/console/app.js", "GET /console/{proxy+}", {"proxy": "app.js"}),
        ("GET", "/console/a/b/c.js", "GET /console/{proxy+}", {"proxy": "a/b/c.js"}),
        ("GET", "/console/../organisation", "GET /console/{proxy+}", {"proxy": "../organisation"}),
        ("GET", "/console/", "ANY $default", {}),
        ("POST", "/console/app.js", "ANY $default", {}),
        ("GET", "/consoles/app.js", "ANY $default", {}),
    ],
)
def test_match_picks_the_route_api_gateway_would(method: str, path: str, route: str, params: dict[str, str]) -> None:
    found = match(ROUTES, method, path)

    assert found is not None
    chosen, got = found
    assert f"{chosen.method} {chosen.path}" == route
    assert got == params


def test_a_greedy_route_loses_to_any_route_without_one() -> None:
    function = ROUTES[0].function
    literal = Route("GET", "/files/index", function)
    variable = Route("GET", "/files/{name}", function)
    greedy = Route("GET", "/files/{proxy+}", function)
    table = [greedy, variable, literal]

    assert match(table, "GET", "/files/index") == (literal, {})
    assert match(table, "GET", "/files/other") == (variable, {"name": "other"})
    assert match(table, "GET", "/files/a/b") == (greedy, {"proxy": "a/b"})
