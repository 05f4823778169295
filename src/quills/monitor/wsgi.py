"""``hystrix_stream_wsgi()``: the instance stream (and ``/metrics``) as a WSGI app.

A WSGI server gives each request a thread, so a stream is an iterator that sleeps between events. The
server calls ``close()`` when the client is gone (a failed write of a ping) or the server stops; that is
where the connection slot is given back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from quills.monitor.prometheus import prometheus_wsgi
from quills.monitor.stream import (
    PING,
    ConnectionLimiter,
    StreamOptions,
    cors_headers,
    delay_of,
    endpoint_of,
    over_capacity_message,
    preflight_headers,
    stream_headers,
)
from quills.monitor.tick import TickSource
from quills.resilience.decorator import resolve_registry
from quills.resilience.registry import Registry

__all__ = ("HystrixStreamWsgi", "hystrix_stream_wsgi")

StartResponse = Callable[..., Any]


class _Events:
    """The body of one stream response: ticks and pings until closed or stopped."""

    def __init__(
        self, app: HystrixStreamWsgi, delay: float, ping_every: float, stopping: threading.Event
    ) -> None:
        self._app = app
        self._delay = delay
        self._ping_every = ping_every
        self._stopping = stopping
        self._next_tick = self._next_ping = time.monotonic()
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        wait = min(self._next_tick, self._next_ping) - time.monotonic()
        if wait > 0 and self._stopping.wait(wait):
            raise StopIteration
        if self._stopping.is_set():
            raise StopIteration
        now = time.monotonic()
        body = b""
        if now >= self._next_tick:
            body = self._app.ticks.payload(self._delay)
            self._next_tick = max(self._next_tick + self._delay, now)
        if now >= self._next_ping:
            body += PING
            self._next_ping = max(self._next_ping + self._ping_every, now)
        return body

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._app.limiter.release()


class HystrixStreamWsgi:
    """WSGI app serving ``/hystrix.stream`` (and ``/metrics`` unless ``options.prometheus`` is false).

    Use a threaded WSGI server (gunicorn with threads, waitress, wsgiref with ``ThreadingMixIn``): each
    stream client holds one thread. :meth:`stop` ends every open stream (for a clean server shutdown).
    """

    def __init__(self, registry: Registry, options: StreamOptions) -> None:
        self.registry = registry
        self.options = options
        self.limiter = ConnectionLimiter(options.max_connections)
        self.ticks = TickSource(registry, interval=options.interval, histograms=options.histograms)
        self._metrics = prometheus_wsgi(registry) if options.prometheus else None
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End every open stream at its next wait."""
        self._stopping.set()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        endpoint = endpoint_of(environ.get("SCRIPT_NAME", "") + path, environ.get("SCRIPT_NAME", ""))
        if endpoint == "metrics" and self._metrics is not None:
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        if endpoint != "stream":
            return _plain(start_response, "404 Not Found", b"Not Found")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "HEAD":
            start_response("200 OK", stream_headers(self.options))
            return [b""]
        preflight = preflight_headers(self.options) if method == "OPTIONS" else None
        if preflight is not None:
            start_response("204 No Content", preflight)
            return [b""]
        if method != "GET":
            return _plain(start_response, "405 Method Not Allowed", b"Method Not Allowed")
        if not self.limiter.acquire():
            message = over_capacity_message(self.limiter.limit)
            return _plain(start_response, "503 Service Unavailable", message, cors_headers(self.options))
        events = _Events(
            self,
            delay_of(path, environ.get("QUERY_STRING", ""), self.options.interval),
            self.options.ping_interval,
            self._stopping,
        )
        try:
            start_response("200 OK", stream_headers(self.options))
        except BaseException:
            events.close()
            raise
        return events


def _plain(
    start_response: StartResponse, status: str, body: bytes, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


def hystrix_stream_wsgi(
    registry: Registry | None = None,
    *,
    interval: float = 0.5,
    ping_interval: float = 0.5,
    max_connections: int = 5,
    cors_origin: str | None = None,
    histograms: bool = True,
    prometheus: bool = True,
) -> HystrixStreamWsgi:
    """The instance stream as a WSGI app (Flask, Django, gunicorn, waitress, wsgiref).

    Serves ``/hystrix.stream`` and, with ``prometheus=True`` (default), ``/metrics``. Same options and
    defaults as :func:`~quills.monitor.hystrix_stream_app`.

    Raises:
        ConfigError: an option is out of range.
    """
    options = StreamOptions(
        interval=interval,
        ping_interval=ping_interval,
        max_connections=max_connections,
        cors_origin=cors_origin,
        histograms=histograms,
        prometheus=prometheus,
    )
    return HystrixStreamWsgi(resolve_registry(registry), options)
