"""The console function (functions/console): an allow-list of static files with strict
security headers, no access of its own, and pages that load nothing from elsewhere."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.iam import template_grants
from devstack.template import functions, load_template
from tests.unit.support import http_event

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "functions" / "console"
STATIC = FOLDER / "static"
TEMPLATE = load_template()


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("console_app_under_test", FOLDER / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


console = _load()


def page(headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = console.handler(http_event("GET", "/console", headers=headers), None)
    return response


def asset(proxy: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = http_event(
        "GET", f"/console/{proxy}", route="GET /console/{proxy+}", headers=headers, path_params={"proxy": proxy}
    )
    response: dict[str, Any] = console.handler(event, None)
    return response


def test_the_sample_event_gets_the_page_as_html() -> None:
    event = json.loads((ROOT / "events" / "console.json").read_text())

    response = console.handler(event, None)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert response["body"] == (STATIC / "index.html").read_text()


def test_every_answer_carries_the_security_headers() -> None:
    for response in (page(), asset("app.js"), asset("nothing.js"), asset("")):
        headers = response["headers"]
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self';" in csp
        assert "style-src 'self';" in csp
        assert "connect-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("proxy", "content_type", "file"),
    [
        ("app.js", "text/javascript; charset=utf-8", "app.js"),
        ("style.css", "text/css; charset=utf-8", "style.css"),
        ("icon.svg", "image/svg+xml", "icon.svg"),
    ],
)
def test_an_allowed_file_is_served_with_its_content_type(proxy: str, content_type: str, file: str) -> None:
    response = asset(proxy)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == content_type
    assert response["headers"]["Cache-Control"] == "no-cache"
    assert response["body"] == (STATIC / file).read_text()


@pytest.mark.parametrize(
    "proxy",
    [
        "app.py",
        "../app.py",
        "static/app.js",
        "..%2Fapp.py",
        "%2e%2e/app.py",
        "../../layers/webhook_service/webhook_service/settings.py",
        "/etc/passwd",
        "index.html",
        "APP.JS",
        "app.js/",
        "app.js\x00",
        "app.js?x=1",
        "./app.js",
    ],
)
def test_a_path_outside_the_allow_list_is_404_and_nothing_is_read(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> tuple[str, str]:
        raise AssertionError(f"read {name!r} for {proxy!r}")

    monkeypatch.setattr(console, "_read", refuse)

    response = asset(proxy)

    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["body"] == "Not found.\n"


def test_every_file_beside_the_page_is_in_the_allow_list_and_nothing_else_is_there() -> None:
    assert sorted(p.name for p in STATIC.iterdir()) == sorted(name for name, _ in console.FILES.values())


def test_an_unchanged_file_answers_304_without_a_body() -> None:
    etag = asset("app.js")["headers"]["ETag"]

    again = asset("app.js", headers={"if-none-match": f'"other", {etag}'})
    changed = asset("app.js", headers={"if-none-match": '"other"'})

    assert again["statusCode"] == 304
    assert again["body"] == ""
    assert again["headers"]["ETag"] == etag
    assert changed["statusCode"] == 200


def test_console_with_a_slash_redirects_to_the_page() -> None:
    response = asset("")

    assert response["statusCode"] == 308
    assert response["headers"]["Location"] == "../console"


# -- what the page loads ----------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.links: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>: inline script or style")
        if tag == "style":
            self.problems.append("<style>: inline style")
        if tag == "script":
            self._in_script = True
            if not named.get("src"):
                self.problems.append("<script> without src: inline script")
        for name in ("src", "href", "action"):
            if named.get(name):
                self.links.append(str(named[name]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_the_page_has_no_inline_script_or_style_and_links_only_its_own_files() -> None:
    parser = _Page()
    parser.feed((STATIC / "index.html").read_text())

    assert parser.problems == []
    served = {f"console/{proxy}" for proxy in console.FILES if proxy}
    assert {link for link in parser.links if not link.startswith("#")} == served


def test_the_script_and_stylesheet_load_nothing_from_elsewhere() -> None:
    script = (STATIC / "app.js").read_text()
    style = (STATIC / "style.css").read_text()

    # The one absolute URL in the script is SVG's namespace name, which is never fetched.
    assert re.findall(r"https?://[^\s\"'`]+", script) == ["http://www.w3.org/2000/svg"]
    assert re.findall(r"https?://", style) == []
    assert "@import" not in style
    assert "url(" not in style


def test_the_script_writes_no_html_and_keeps_the_token_in_session_storage_only() -> None:
    script = (STATIC / "app.js").read_text()

    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert unsafe not in script, unsafe
    assert "localStorage" not in script
    assert "document.cookie" not in script
    assert "console.log" not in script
    assert re.findall(r"sessionStorage\.(\w+)\(TOKEN_KEY", script) == ["setItem", "removeItem", "getItem"]


# -- no access of its own, nothing added to the API functions ---------------------------------


def test_the_console_function_has_no_policy_and_no_grants() -> None:
    resource = TEMPLATE["Resources"]["ConsoleFunction"]

    assert "Policies" not in resource["Properties"]
    assert template_grants(TEMPLATE)["ConsoleFunction"] == set()


def test_the_console_imports_nothing_of_the_service_even_with_the_layer_on_its_path() -> None:
    """As on Lambda, where Globals attach the layer to every function: importing and calling
    the handler loads neither the service's package nor boto3."""
    code = (
        "import importlib.util, json, sys\n"
        "assert importlib.util.find_spec('webhook_service'), 'the layer is not on the path'\n"
        "import app\n"
        "app.handler(json.load(open(sys.argv[1])), None)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    # The layer is on the path as it is installed in .venv (editable); `app` is found from cwd.
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "events" / "console.json")],
        cwd=FOLDER,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    modules = set(json.loads(done.stdout))
    assert "app" in modules
    service = {"webhook_service", "boto3", "botocore", "aws_lambda_powertools"}
    assert not {m for m in modules if m.split(".")[0] in service}


def test_no_api_function_packages_the_console_files() -> None:
    """Each function's package is its own folder: the console's files ship in its zip alone,
    and the layer every API function imports holds none of them."""
    for function in functions(TEMPLATE):
        if function.logical_id != "ConsoleFunction":
            assert not list(function.code_dir.rglob("static")), function.logical_id
            assert function.code_dir != FOLDER
    layer_files = [p.name for p in (ROOT / "layers").rglob("*") if p.is_file()]
    assert not {"index.html", "app.js", "style.css"} & set(layer_files)
