"""``serve()``: a small background HTTP server for programs with no web framework.

It is the stdlib's wsgiref with a thread per request, serving :class:`~quills.monitor.wsgi.HystrixStreamWsgi`
(``/hystrix.stream`` and ``/metrics``) and the web dashboard (``/dashboard/``) from daemon threads, so it
never keeps the program alive.
"""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from quills.monitor.dashboard.apps import DashboardWsgi
from quills.monitor.wsgi import hystrix_stream_wsgi
from quills.resilience.registry import Registry

__all__ = ("MonitorServer", "serve")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr is noise for a metrics endpoint


class MonitorServer:
    """A running :func:`serve` server: ``port``, ``url`` and :meth:`close`. Also a context manager."""

    def __init__(self, server: _ThreadingServer, app: Any) -> None:
        self._server = server
        self._app = app
        address = server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="quills-monitor", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The stream's URL, e.g. ``http://127.0.0.1:8081/hystrix.stream``."""
        return f"http://{self.host}:{self.port}/hystrix.stream"

    @property
    def dashboard_url(self) -> str:
        """The web dashboard's URL, e.g. ``http://127.0.0.1:8081/dashboard/``."""
        return f"http://{self.host}:{self.port}/dashboard/"

    def close(self) -> None:
        """Stop accepting, end open streams and free the port."""
        self._app.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MonitorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    registry: Registry | None = None,
    interval: float = 0.5,
    ping_interval: float = 0.5,
    max_connections: int = 5,
    cors_origin: str | None = None,
    histograms: bool = True,
) -> MonitorServer:
    """Serve ``/hystrix.stream``, ``/metrics`` and ``/dashboard/`` from background threads; returns at once.

    Args:
        port: TCP port, 0..65535; 0 (default) picks a free one (read it from ``.port``).
        host: address to bind. Default ``127.0.0.1`` (loopback only); ``0.0.0.0`` exposes it.
        registry: default ``quills.registry``.
        interval, ping_interval, max_connections, cors_origin, histograms: see
            :class:`~quills.monitor.StreamOptions` (0.5 s, 0.5 s, 5, None, True).

    Raises:
        ConfigError: an option is out of range. OSError: the port cannot be bound.
    """
    app = hystrix_stream_wsgi(
        registry,
        interval=interval,
        ping_interval=ping_interval,
        max_connections=max_connections,
        cors_origin=cors_origin,
        histograms=histograms,
    )
    server = make_server(
        host, port, DashboardWsgi(app), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    return MonitorServer(server, app)
