"""The dashboard over HTTP: a WSGI middleware (for ``serve()``) and an ASGI app (for the aggregator).

Both answer ``/dashboard`` with a redirect to ``/dashboard/`` (so the page's relative URLs resolve), the
page and its assets with ``Cache-Control: no-cache``, and 404 for anything else under ``/dashboard/``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from quills.monitor.dashboard.assets import DASHBOARD_PATH, Asset, find_asset

__all__ = ("DashboardAsgi", "DashboardWsgi", "dashboard_asgi")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: the streams the page offers and opens when its URL names none, relative to ``/dashboard/``
StreamList = Callable[[], Sequence[str]]

#: what the page asks this server for (a JSON object ``{"streams": [...]}``)
CONFIG_PATH = DASHBOARD_PATH + "/config.json"


def _respond(path: str, method: str, streams: StreamList) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for a path at or under ``/dashboard``."""
    if method not in ("GET", "HEAD"):
        return 405, [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD")], b""
    if path == DASHBOARD_PATH:
        return 308, [("Location", DASHBOARD_PATH + "/"), ("Content-Length", "0")], b""
    asset: Asset | None
    if path == CONFIG_PATH:
        config = json.dumps({"streams": list(streams())}).encode()
        asset = Asset(config, "application/json")
    else:
        asset = find_asset(path[len(DASHBOARD_PATH) + 1 :])
    if asset is None:
        return 404, [("Content-Type", "text/plain; charset=utf-8")], b"Not Found"
    headers = [
        ("Content-Type", asset.content_type),
        ("Content-Length", str(len(asset.body))),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return 200, headers, b"" if method == "HEAD" else asset.body


def is_dashboard_path(path: str) -> bool:
    """True for ``/dashboard`` and every path under ``/dashboard/``."""
    return path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/")


_REASONS = {200: "OK", 308: "Permanent Redirect", 404: "Not Found", 405: "Method Not Allowed"}


class DashboardWsgi:
    """WSGI middleware: serves ``/dashboard/`` itself and passes every other request to ``app``.

    ``quills.monitor.serve()`` wraps its stream app in one, so ``/hystrix.stream``, ``/metrics`` and
    ``/dashboard/`` share a port.

    Args:
        app: the WSGI app of every other path.
        streams: the stream URLs the page opens when its own URL names none (relative to the page);
            default ``["../hystrix.stream"]``, this server's instance stream.
    """

    def __init__(self, app: WsgiApp, streams: StreamList | None = None) -> None:
        self.app = app
        self.streams = streams or _instance_stream

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not is_dashboard_path(path):
            return self.app(environ, start_response)
        status, headers, body = _respond(path, environ.get("REQUEST_METHOD", "GET"), self.streams)
        start_response(f"{status} {_REASONS[status]}", headers)
        return [body]


class DashboardAsgi:
    """ASGI app answering ``/dashboard`` and ``/dashboard/...`` (mount it at the root of a router).

    In Starlette: ``Route("/dashboard", app)`` plus ``Route("/dashboard/{path:path}", app)``.

    Args:
        streams: the stream URLs the page opens when its own URL names none (relative to the page),
            asked at each page load; default ``["../hystrix.stream"]``.
    """

    def __init__(self, streams: StreamList | None = None) -> None:
        self.streams = streams or _instance_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # Starlette keeps the full path in ``path``; other routers strip their mount point into ``root_path``
        path = scope["path"]
        if not is_dashboard_path(path):
            path = scope.get("root_path", "") + path
        if not is_dashboard_path(path):
            status, headers, body = 404, [("Content-Type", "text/plain; charset=utf-8")], b"Not Found"
        else:
            status, headers, body = _respond(path, scope.get("method", "GET"), self.streams)
        raw = [(name.lower().encode(), value.encode()) for name, value in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _instance_stream() -> Sequence[str]:
    return ["../hystrix.stream"]


def dashboard_asgi(streams: StreamList | None = None) -> DashboardAsgi:
    """The dashboard as an ASGI app (see :class:`DashboardAsgi`)."""
    return DashboardAsgi(streams)
