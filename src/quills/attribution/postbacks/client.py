"""The partner HTTP client: SSRF-checked, pinned to the checked address, no redirects.

Reads: ``Due`` deliveries. Writes: HTTP requests to partners.

aiohttp (its connection pool stays cheap with hundreds of connections) with a resolver that is the
``TargetPolicy``: a host name is resolved there and every address checked, and aiohttp connects to the
address the resolver returned while keeping the name for the ``Host`` header, the TLS SNI and the
certificate check, so a DNS answer that changes between check and connect (rebinding) is never used.
DNS caching is off: every new connection is checked. IP literals never reach a resolver, so they are
checked before the request. Redirects are never followed.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from quills.attribution.config.handlers import header_problems
from quills.attribution.config.ssrf import TargetPolicy, UnsafeTarget
from quills.attribution.postbacks.sinks import Due

__all__ = ("PartnerClient", "RetryableResponse", "PermanentResponse", "Response", "TransportError")

TransportError = (aiohttp.ClientError, TimeoutError)
"""What a send raises when no answer came (connection refused or reset, timeout): retried."""


_NO_TIMEOUT = aiohttp.ClientTimeout()
"""No limit at all (not even aiohttp's default 5 minutes): for a send whose caller enforces its deadline."""

_TARGET_SAFE = "!$%&'()*+,/:;=?@[]~-._"
"""What may stay as it is in a request target; anything else (a space, a non-ASCII letter) is
percent-encoded as UTF-8, and a ``%`` already there is kept (rendered values arrive encoded)."""


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


class _PolicyResolver(AbstractResolver):
    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._policy.resolve_host(host, port)
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


class PartnerClient:
    """Sends deliveries over one pooled aiohttp session.

    Args:
        policy: where requests may go.
        max_connections: pooled connections in total (default 1000).
        ssl_context: for ``https`` partners (default: the system's CAs, host names checked).
    """

    def __init__(
        self,
        policy: TargetPolicy,
        *,
        max_connections: int = 1000,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        # per request these would be rebuilt: one timeout object per distinct timeout, and the hosts
        # already checked (an allowed IP literal, or a name: the resolver checks its addresses)
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._hosts: set[str] = set()
        self._checked_headers: dict[int, dict[str, str]] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            use_dns_cache=False,
            resolver=_PolicyResolver(self.policy),
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": "quills-postbacks/1"},
            trust_env=False,
            auto_decompress=False,
            # partners' cookies are never kept nor sent to anyone (and the jar costs time per request)
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    def _check_headers(self, headers: dict[str, str]) -> None:
        """Refuse a header that would add a line or a request, or override what the client sets.

        Checked at save too; here so that no configuration can reach the wire. A rule's dict is shared by
        its deliveries, so a checked dict is remembered by identity (holding it, so its id is not reused).
        """
        if self._checked_headers.get(id(headers)) is headers:
            return
        for name, value in headers.items():
            problems = header_problems(name, value)
            if problems:
                raise UnsafeTarget(f"header {name!r} is not allowed: {'; '.join(problems)}")
        if len(self._checked_headers) >= 1024:
            self._checked_headers.clear()
        self._checked_headers[id(headers)] = headers

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, due: Due, enforced_s: float = 0.0) -> Response:
        """Send ``due`` once. Returns a 2xx ``Response``; raises ``RetryableResponse``,
        ``PermanentResponse``, ``UnsafeTarget`` or a ``TransportError`` (connection, timeout).

        ``enforced_s``: a deadline, in seconds, that the caller already enforces by cancelling the send (a
        quills command's timeout); default 0.0, none. When it is no longer than ``due.timeout_s`` aiohttp
        sets no timer of its own for the request (a timer handle and two timer contexts per request).
        """
        # the URL object aiohttp connects with is the one checked (no second parser to disagree with)
        raw = due.url.partition("#")[0]  # a fragment is never sent
        if not (raw.isascii() and raw.isprintable()) or " " in raw:
            raw = quote(raw, safe=_TARGET_SAFE)
        try:
            url = URL(raw, encoded=True)
            host = url.raw_host
        except ValueError as exc:
            raise UnsafeTarget(f"invalid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not host:
            raise UnsafeTarget(f"not an http(s) URL: {url.scheme}://{host}")
        if host not in self._hosts:
            self.policy.check_literal(host)  # raises for a refused literal: never cached
            if len(self._hosts) >= 4096:
                self._hosts.clear()
            self._hosts.add(host)
        if self.policy.ports and url.port not in self.policy.ports:
            raise UnsafeTarget(f"port {url.port} is not allowed")
        if due.headers:
            self._check_headers(due.headers)
        session = self._session or self._open()
        timeout = _NO_TIMEOUT if 0.0 < enforced_s <= due.timeout_s else self._timeouts.get(due.timeout_s)
        if timeout is None:
            timeout = self._timeouts[due.timeout_s] = aiohttp.ClientTimeout(total=due.timeout_s)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {
            "headers": due.headers or None,
            "allow_redirects": False,
            "timeout": timeout,
        }
        if due.body is not None:
            kwargs["data"] = due.body.encode()
        try:
            # awaited rather than entered: the body's end releases the connection, so the context
            # manager's exit (and its wait for a writer long done) is only the release below
            response = await session.request(due.method, url, **kwargs)
            try:
                # the body is never used: drained only while it is still arriving (most answers are whole
                # when their headers are read), so that the connection can be reused
                if not response.content.is_eof():
                    await response.read()
            finally:
                response.release()
            code = response.status
            retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            # the resolver's refusal arrives wrapped in a connection error: keep it a refusal
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, UnsafeTarget):
                raise cause from None
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        if 200 <= code < 300:
            return Response(code, latency_ms)
        if code == 429 or code >= 500:
            raise RetryableResponse(code, retry_after)
        raise PermanentResponse(code)
