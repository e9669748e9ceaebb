"""GET /console and GET /console/{proxy+}: the console's static files (docs/console.md).

A fixed allow-list of files beside this module, each with strict security headers. This
function imports nothing of the service (no `webhook_service`, no boto3) and its role has no
policy: the page it serves calls the public API from the browser, with the user's own token,
so a console file can read nothing that token cannot.
"""

from __future__ import annotations

import hashlib
import os

# Not `from typing import ...` nor pathlib: those two imports would be most of this function's
# cold start. mypy reads a module's own TYPE_CHECKING constant as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

# The path under /console -> (file in static/, content type). Nothing else is ever read: a
# request names a key of this table, never a path, so there is nothing to traverse.
FILES: dict[str, tuple[str, str]] = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
    "icon.svg": ("icon.svg", "image/svg+xml"),
}

# Same origin only, no inline script or style, never framed; the page's API calls go to this
# origin (`connect-src 'self'`), so no CORS is involved.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}

NOT_FOUND = "Not found.\n"

# file name -> (modification time, text, ETag): read once per container, and again only when
# the file changes (which happens under `make dev`, never on Lambda).
_cache: dict[str, tuple[int, str, str]] = {}


def _read(name: str) -> tuple[str, str]:
    path = os.path.join(STATIC, name)
    mtime = os.stat(path).st_mtime_ns
    cached = _cache.get(name)
    if cached is None or cached[0] != mtime:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        cached = (mtime, text, '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"')
        _cache[name] = cached
    return cached[1], cached[2]


def _response(status: int, headers: dict[str, str], body: str = "") -> dict[str, Any]:
    return {"statusCode": status, "headers": {**SECURITY_HEADERS, **headers}, "body": body, "isBase64Encoded": False}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    greedy = str(event.get("routeKey", "")).endswith("{proxy+}")
    proxy = str((event.get("pathParameters") or {}).get("proxy", "")) if greedy else ""
    if greedy and not proxy:
        # /console/, should API Gateway route it here: the page lives at /console, where its
        # relative links (console/app.js) resolve.
        return _response(308, {"Location": "../console", "Cache-Control": "no-store"})
    found = FILES.get(proxy)
    if found is None:
        return _response(404, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}, NOT_FOUND)
    name, content_type = found
    text, etag = _read(name)
    # Not fingerprinted, so every use revalidates; an unchanged file costs a 304 without a body.
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "ETag": etag}
    request_headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if etag in (tag.strip() for tag in request_headers.get("if-none-match", "").split(",")):
        return _response(304, headers)
    return _response(200, headers, text)
