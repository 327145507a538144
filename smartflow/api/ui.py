"""``/ui``: the dashboard, its static files and its stream, served by the API process.

The page is plain HTML, CSS and JavaScript modules shipped inside the package
(``smartflow/api/static``, with uPlot vendored at a pinned version and its licence); nothing is
built at install and nothing is fetched from elsewhere. It reads everything over one
WebSocket (``/ui/stream``, ``smartflow.api.stream``); the kill button posts to the existing
``/api/kill`` with the kill token the operator types, which the page never stores.

Access follows the API's: on loopback without an ``api_token`` it is open; with an
``api_token`` (required on any other listen address) every ``/ui`` path but the login form
needs either ``Authorization: Bearer <api_token>`` or the session cookie the login form sets.
The cookie holds an HMAC of a fixed label under the token, never the token, so a page, its
storage or a proxy log never see a secret. The stream also refuses a cross-site ``Origin``
(another site's page cannot read the daemon through the operator's browser).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from smartflow.api.stream import StreamHub


COOKIE = "smartflow_ui"
_LABEL = b"smartflow dashboard session v1"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".txt": "text/plain",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smartflow · sign in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/style.css"></head>
<body class="login"><form method="post" action="/ui/login">
<h1>smartflow</h1><p>This daemon's API listens beyond loopback: enter its API token
(the <code>api_token</code> credential).</p>{error}
<input type="password" name="token" autocomplete="off" autofocus required>
<button type="submit">Open the dashboard</button></form></body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/`` by its path there, with its content type, read once."""
    out: dict[str, tuple[bytes, str]] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
                continue
            suffix = "." + child.name.rsplit(".", 1)[-1] if "." in child.name else ""
            if child.name == "LICENSE":
                suffix = ".txt"
            if suffix in _TYPES:
                out[prefix + child.name] = (child.read_bytes(), _TYPES[suffix])

    walk(resources.files("smartflow.api") / "static", "")
    return out


class Dashboard:
    """The ``/ui`` routes and their access rule."""

    def __init__(self, hub: StreamHub, api_token: bytes, timeout_s: float) -> None:
        self.hub = hub
        self.api_token = api_token
        self.timeout_s = timeout_s
        self.files = static_files()
        self.session = (
            hmac.new(api_token, _LABEL, hashlib.sha256).hexdigest().encode() if api_token else b""
        )

    def add_routes(self, app: web.Application) -> None:
        """Register ``/ui`` and below."""
        app.router.add_get("/ui", self._redirect)
        app.router.add_get("/ui/", self._index)
        app.router.add_get("/ui/login", self._login_form)
        app.router.add_post("/ui/login", self._login)
        app.router.add_get("/ui/stream", self._stream)
        app.router.add_get("/ui/static/{path:.+}", self._static)

    # ---- access -------------------------------------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        """Open without an api_token; else the bearer token or the session cookie."""
        if not self.api_token:
            return True
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if given and hmac.compare_digest(given.encode("utf-8", "replace"), self.api_token):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode("utf-8", "replace"), self.session)

    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run a ``/ui`` request: access first, then bounded in time (the stream excepted)."""
        path = request.path
        open_paths = ("/ui/login", "/ui/static/style.css")
        if path not in open_paths and not self.authorized(request):
            if path in ("/ui", "/ui/"):
                raise web.HTTPSeeOther("/ui/login")
            raise web.HTTPUnauthorized(reason="missing or wrong API token (sign in at /ui/login)")
        if path == "/ui/stream":
            return await handler(request)
        async with asyncio.timeout(self.timeout_s):
            return await handler(request)

    # ---- handlers -----------------------------------------------------------------------

    def _headers(self, ctype: str, cache: bool) -> dict[str, str]:
        return {
            "Content-Type": f"{ctype}; charset=utf-8" if ctype != "image/png" else ctype,
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "max-age=3600" if cache else "no-store",
        }

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/ui/")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        body, ctype = self.files["index.html"]
        return web.Response(body=body, headers=self._headers(ctype, cache=False))

    async def _static(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound(reason="no such file")
        body, ctype = found
        return web.Response(body=body, headers=self._headers(ctype, cache=False))

    async def _login_form(self, request: web.Request, error: str = "") -> web.StreamResponse:
        if not self.api_token or self.authorized(request):
            raise web.HTTPSeeOther("/ui/")
        return web.Response(
            body=LOGIN_PAGE.format(error=error).encode(),
            status=401 if error else 200,
            headers=self._headers("text/html", cache=False),
        )

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = form.get("token")
        given = token.encode("utf-8", "replace") if isinstance(token, str) else b""
        if not self.api_token:
            raise web.HTTPSeeOther("/ui/")
        if not hmac.compare_digest(given, self.api_token):
            return await self._login_form(request, '<p class="error">Wrong token.</p>')
        resp = web.HTTPSeeOther("/ui/")
        resp.set_cookie(
            COOKIE,
            self.session.decode(),
            path="/ui",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        raise resp

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(reason="cross-site stream refused")
        return await self.hub.handle(request)
