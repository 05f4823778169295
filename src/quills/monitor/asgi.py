"""``hystrix_stream_app()``: the instance stream (and ``/metrics``) as an ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from quills.monitor.prometheus import prometheus_app
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

__all__ = ("HystrixStreamApp", "hystrix_stream_app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers]


class HystrixStreamApp:
    """ASGI app serving ``/hystrix.stream`` (and ``/metrics`` unless ``options.prometheus`` is false).

    Mount it anywhere (``Mount("/", app)`` or ``Mount("/hystrix.stream", app)`` in Starlette, or
    ``app.mount(...)`` in FastAPI); other paths get 404.
    """

    def __init__(self, registry: Registry, options: StreamOptions) -> None:
        self.registry = registry
        self.options = options
        self.limiter = ConnectionLimiter(options.max_connections)
        self.ticks = TickSource(registry, interval=options.interval, histograms=options.histograms)
        self._metrics = prometheus_app(registry) if options.prometheus else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        endpoint = endpoint_of(scope["path"], scope.get("root_path", ""))
        if endpoint == "metrics" and self._metrics is not None:
            await self._metrics(scope, receive, send)
        elif endpoint == "stream":
            await self._stream(scope, receive, send)
        else:
            await _plain(send, 404, b"Not Found")

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if method == "HEAD":
            # answered without taking a slot: HEAD requests leaked Hystrix's slots (#1369)
            headers = _encode(stream_headers(self.options))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        preflight = preflight_headers(self.options) if method == "OPTIONS" else None
        if preflight is not None:
            await send({"type": "http.response.start", "status": 204, "headers": _encode(preflight)})
            await send({"type": "http.response.body", "body": b""})
            return
        if method != "GET":
            await _plain(send, 405, b"Method Not Allowed")
            return
        if not self.limiter.acquire():
            message = over_capacity_message(self.limiter.limit)
            await _plain(send, 503, message, _encode(cors_headers(self.options)))
            return
        try:
            query = scope.get("query_string", b"").decode("latin-1")
            delay = delay_of(scope["path"], query, self.options.interval)
            await self._pump(receive, send, delay)
        finally:
            self.limiter.release()

    async def _pump(self, receive: Receive, send: Send, delay: float) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            headers = _encode(stream_headers(self.options))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            loop = asyncio.get_running_loop()
            ping_every = self.options.ping_interval
            next_tick = next_ping = loop.time()
            while not gone.is_set():
                now = loop.time()
                body = b""
                if now >= next_tick:
                    # a tick of a large registry takes tens of ms: never block the service's event loop on it
                    body = await asyncio.to_thread(self.ticks.payload, delay)
                    next_tick = max(next_tick + delay, now)
                if now >= next_ping:
                    body += PING
                    next_ping = max(next_ping + ping_every, now)
                if body:  # timers may fire a hair early; an empty chunk could read as the end elsewhere
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                try:
                    await asyncio.wait_for(gone.wait(), max(0.0, min(next_tick, next_ping) - loop.time()))
                except TimeoutError:
                    pass
        except OSError:
            pass  # the client went away mid-write
        finally:
            watcher.cancel()


async def _plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def hystrix_stream_app(
    registry: Registry | None = None,
    *,
    interval: float = 0.5,
    ping_interval: float = 0.5,
    max_connections: int = 5,
    cors_origin: str | None = None,
    histograms: bool = True,
    prometheus: bool = True,
) -> HystrixStreamApp:
    """The instance stream as an ASGI app (Starlette, FastAPI, any ASGI server).

    Serves ``/hystrix.stream`` and, with ``prometheus=True`` (default), ``/metrics``. ``registry`` defaults
    to ``quills.registry``; the other arguments are :class:`~quills.monitor.StreamOptions` (tick every 0.5 s,
    ping every 0.5 s, 5 clients, no CORS header, histograms on).

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
    return HystrixStreamApp(resolve_registry(registry), options)
