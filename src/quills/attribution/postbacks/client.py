"""The partner HTTP client: SSRF-checked, connected only to checked addresses, no redirects.

Reads: ``Due`` deliveries. Writes: HTTP requests to partners.

Requests go through a small keep-alive HTTP/1.1 pool (``http1.ConnectionPool``). Every new connection
asks ``TargetPolicy`` where it may go: a host name is resolved there and every address checked, and the
connection is made to a checked address while the name stays the ``Host`` header, the TLS SNI and the
name the certificate must match, so a DNS answer that changes between check and connect (rebinding) is
never used. Nothing is cached between connections. IP literals are checked before anything is sent.
Redirects are never followed: a 3xx is a permanent answer.
"""

from __future__ import annotations

import re
import ssl
import time
from urllib.parse import quote, urlsplit

from quills.attribution.config.ssrf import TargetPolicy, UnsafeTarget
from quills.attribution.postbacks.http1 import ConnectionPool, Origin, ProtocolError
from quills.attribution.postbacks.sinks import Due

__all__ = ("PartnerClient", "RetryableResponse", "PermanentResponse", "Response", "TransportError")

TransportError = (OSError, TimeoutError, ProtocolError)
"""What a send raises when no usable answer came (refused, reset, TLS failure, timeout, not HTTP): retried."""


class RetryableResponse(Exception):
    """The partner answered 5xx or 429 (a failure for its breaker; retried)."""

    def __init__(self, status_code: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


class PermanentResponse(Exception):
    """The partner answered 3xx or another 4xx: never retried, and not the partner's ill health."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code} (not retried)")
        self.status_code = status_code


class Response:
    """A 2xx answer: its status and latency."""

    __slots__ = ("latency_ms", "status_code")

    def __init__(self, status_code: int, latency_ms: float) -> None:
        self.status_code = status_code
        self.latency_ms = latency_ms


# scheme, authority, and the rest (path, query, fragment)
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.S)
# what may stand in a request target as sent (RFC 3986 characters; everything else is percent-encoded)
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


class _Route:
    """What a URL's scheme and authority resolve to, checked once: the origin and the Host header."""

    __slots__ = ("head", "origin")

    def __init__(self, origin: Origin, head: bytes) -> None:
        self.origin = origin
        self.head = head


class PartnerClient:
    """Sends deliveries over pooled keep-alive connections.

    Args:
        policy: where requests may go.
        ssl_context: for ``https`` partners (default: the system's CAs, host names checked, TLS 1.2+).
        max_idle: idle connections kept per partner origin, 0..10000 (default 100). How many are open
            at once is bounded by each partner command's bulkhead (``max_concurrent``).
        user_agent: the ``User-Agent`` header (default ``quills-postbacks/1``).
    """

    def __init__(
        self,
        policy: TargetPolicy,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 100,
        user_agent: str = "quills-postbacks/1",
    ) -> None:
        self.policy = policy
        self._pool = ConnectionPool(self._addresses, ssl_context=ssl_context, max_idle=max_idle)
        self._agent = user_agent
        # per request these would be redone: each (scheme, authority) checked once (an allowed literal
        # stays allowed: the policy never changes), and each rule's header lines built once
        self._routes: dict[tuple[str, str], _Route] = {}
        self._header_lines: dict[int, tuple[dict[str, str], bytes]] = {}

    @property
    def open_connections(self) -> int:
        """Partner connections open now."""
        return self._pool.open_connections

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def _addresses(self, host: str, port: int) -> list[str]:
        # called for every new connection: a literal was checked by _route; a name is resolved and every
        # address checked now, and the connection goes to one of exactly these addresses
        if self.policy.check_literal(host):
            return [host]
        return [str(ip) for ip in await self.policy.resolve_host(host, port)]

    def _route(self, scheme: str, authority: str) -> _Route:
        route = self._routes.get((scheme, authority))
        if route is not None:
            return route
        if scheme not in ("http", "https"):
            raise UnsafeTarget(f"not an http(s) URL: {scheme}://{authority}")
        if "@" in authority:
            raise UnsafeTarget("credentials in the URL are not allowed")
        try:
            split = urlsplit(f"{scheme}://{authority}/")
            port = split.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeTarget(f"invalid URL: {exc}") from None
        host = split.hostname
        if not host or not authority.isascii() or not authority.isprintable() or " " in authority:
            raise UnsafeTarget(f"invalid host in {scheme}://{authority}")
        if self.policy.ports and port not in self.policy.ports:
            raise UnsafeTarget(f"port {port} is not allowed")
        self.policy.check_literal(host)  # raises for a refused literal (never cached)
        head = f"Host: {authority}\r\nUser-Agent: {self._agent}\r\n".encode("ascii")
        route = _Route((scheme, host, port), head)
        if len(self._routes) >= 4096:
            self._routes.clear()
        self._routes[(scheme, authority)] = route
        return route

    def _lines(self, headers: dict[str, str]) -> bytes:
        if not headers:
            return b""
        # the dict of a rule is shared by its deliveries (see DeliveryStore.pick): keyed by identity,
        # holding the dict so that its id is not reused
        known = self._header_lines.get(id(headers))
        if known is not None and known[0] is headers:
            return known[1]
        lines = []
        for name, value in headers.items():
            # checked at save too; here so that no configuration can add a line or a request
            if (
                not name.isascii()
                or not all(c.isalnum() or c == "-" for c in name)
                or name.lower() in ("host", "content-length", "transfer-encoding", "connection")
                or any(c in value for c in "\r\n\x00")
            ):
                raise UnsafeTarget(f"header {name!r} is not allowed")
            lines.append(f"{name}: {value}\r\n")
        block = "".join(lines).encode("utf-8")
        if len(self._header_lines) >= 1024:
            self._header_lines.clear()
        self._header_lines[id(headers)] = (headers, block)
        return block

    async def send(self, due: Due) -> Response:
        """Send ``due`` once. Returns a 2xx ``Response``; raises ``RetryableResponse``,
        ``PermanentResponse``, ``UnsafeTarget`` or a ``TransportError`` (connection, timeout)."""
        parts = _URL.match(due.url)
        if parts is None:
            raise UnsafeTarget(f"not an http(s) URL: {due.url[:100]!r}")
        scheme, authority, rest = parts.groups()
        route = self._route(scheme.lower(), authority)
        target = rest.partition("#")[0]
        if not target.startswith("/"):
            target = "/" + target
        if not (target.isascii() and target.isprintable() and " " not in target):
            target = quote(target, safe=_TARGET_SAFE)
        method = due.method
        if method not in ("GET", "POST"):
            raise UnsafeTarget(f"method {method!r} is not allowed")
        body = due.body
        if body is None:
            tail = b"Content-Length: 0\r\n\r\n" if method == "POST" else b"\r\n"
            data = b"%s %s HTTP/1.1\r\n%s%s%s" % (
                method.encode(),
                target.encode(),
                route.head,
                self._lines(due.headers),
                tail,
            )
        else:
            payload = body.encode()
            data = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
                method.encode(),
                target.encode(),
                route.head,
                self._lines(due.headers),
                len(payload),
                payload,
            )
        started = time.perf_counter()
        code, retry_after = await self._pool.request(route.origin, data, due.timeout_s)
        latency_ms = (time.perf_counter() - started) * 1000
        if 200 <= code < 300:
            return Response(code, latency_ms)
        if code == 429 or code >= 500:
            raise RetryableResponse(code, retry_after)
        raise PermanentResponse(code)
