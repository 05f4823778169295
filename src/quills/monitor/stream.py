"""What the ASGI and WSGI stream apps share: options, the connection cap, headers, routing, ``?delay=``."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

from quills.errors import ConfigError

__all__ = (
    "StreamOptions",
    "ConnectionLimiter",
    "PING",
    "stream_headers",
    "cors_headers",
    "preflight_headers",
    "endpoint_of",
    "delay_of",
    "over_capacity_message",
)

#: the keep-alive Hystrix writes: a field named ``ping`` that EventSource ignores; a failed write of it is
#: how a gone client is noticed
PING = b"ping: \n\n"
_MIN_DELAY, _MAX_DELAY = 0.05, 60.0


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How an instance stream behaves.

    Attributes:
        interval: seconds between ticks, 0.05..60. Default 0.5 (Hystrix). A client may ask for another
            period with ``?delay=<ms>`` (clamped to the same range).
        ping_interval: seconds between keep-alive pings, 0.05..60. Default 0.5.
        max_connections: concurrent stream clients, 1..10000; one more gets HTTP 503. Default 5 (Hystrix).
        cors_origin: value of ``Access-Control-Allow-Origin``, e.g. ``"*"`` or ``"https://dash.example"``;
            None (default) sends no CORS header.
        histograms: add the ``quills_*_hist`` extension fields to command documents. Default True.
        prometheus: also answer ``/metrics`` (Prometheus) from the same app. Default True.
    """

    interval: float = 0.5
    ping_interval: float = 0.5
    max_connections: int = 5
    cors_origin: str | None = None
    histograms: bool = True
    prometheus: bool = True

    def __post_init__(self) -> None:
        for name in ("interval", "ping_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ConfigError(f"StreamOptions.{name} must be a number of seconds, got {value!r}")
            if not _MIN_DELAY <= value <= _MAX_DELAY:
                raise ConfigError(
                    f"StreamOptions.{name} must be between {_MIN_DELAY} and {_MAX_DELAY} s, got {value!r}"
                )
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int):
            raise ConfigError(f"StreamOptions.max_connections must be an int, got {self.max_connections!r}")
        if not 1 <= self.max_connections <= 10_000:
            raise ConfigError(
                f"StreamOptions.max_connections must be between 1 and 10000, got {self.max_connections}"
            )
        if self.cors_origin is not None and (not self.cors_origin or "\n" in self.cors_origin):
            raise ConfigError(
                f"StreamOptions.cors_origin must be a non-empty origin, got {self.cors_origin!r}"
            )


class ConnectionLimiter:
    """Counts open stream connections; :meth:`acquire` fails past the limit (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Connections open now."""
        return self._open

    def acquire(self) -> bool:
        """Take a slot; False (and nothing taken) when ``limit`` are already open."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self._open -= 1


def over_capacity_message(limit: int) -> bytes:
    """The 503 body, in Hystrix's words."""
    return f"MaxConcurrentConnections reached: {limit}".encode()


def stream_headers(options: StreamOptions) -> list[tuple[str, str]]:
    """Response headers of a stream (Hystrix's three, plus CORS when configured)."""
    headers = [
        ("Content-Type", "text/event-stream;charset=UTF-8"),
        ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
        ("Pragma", "no-cache"),
    ]
    return headers + cors_headers(options)


def cors_headers(options: StreamOptions) -> list[tuple[str, str]]:
    """The CORS header for any stream answer (so a browser can also read a 503's reason), or none."""
    return [] if options.cors_origin is None else [("Access-Control-Allow-Origin", options.cors_origin)]


def preflight_headers(options: StreamOptions) -> list[tuple[str, str]] | None:
    """Headers answering a CORS preflight (``OPTIONS``), or None when CORS is off (then it is a 405)."""
    if options.cors_origin is None:
        return None
    return [
        *cors_headers(options),
        ("Access-Control-Allow-Methods", "GET, HEAD"),
        ("Access-Control-Allow-Headers", "Authorization, Last-Event-ID"),
        ("Access-Control-Max-Age", "600"),
        ("Content-Length", "0"),
    ]


def endpoint_of(path: str, root_path: str = "") -> str | None:
    """``"stream"``, ``"metrics"`` or None for a request path.

    Accepts the app at the root (``/hystrix.stream``), mounted under a prefix (``/ops/hystrix.stream``, or
    mounted *at* ``/hystrix.stream`` so that the remaining path is empty), and the stock dashboard's
    ``/hystrix.stream&delay=2000`` (it glues parameters onto the path when used without its proxy).
    """
    path = path.split("&", 1)[0]
    if path.endswith("/hystrix.stream") or path == "hystrix.stream":
        return "stream"
    if path.endswith("/metrics"):
        return "metrics"
    if path in ("", "/") or path == root_path or path == root_path + "/":
        if root_path.endswith("/hystrix.stream"):
            return "stream"
        if root_path.endswith("/metrics"):
            return "metrics"
    return None


def delay_of(path: str, query: str, default: float) -> float:
    """The tick period in seconds asked for by ``?delay=<ms>`` (or ``&delay=`` glued to the path).

    Missing or unreadable values give ``default``; others are clamped to 0.05..60 s.
    """
    params = parse_qs(query)
    if "&" in path:
        params.update(parse_qs(path.split("&", 1)[1]))
    raw = params.get("delay", [None])[0]
    if raw is None:
        return default
    try:
        ms = float(raw)
    except ValueError:
        return default
    if math.isnan(ms):
        return default
    return min(_MAX_DELAY, max(_MIN_DELAY, ms / 1000))
