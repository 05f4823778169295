"""The partner HTTP client: SSRF-checked, pinned to the checked address, no redirects.

Reads: ``Due`` deliveries. Writes: HTTP requests to partners.

Each request resolves its host through ``TargetPolicy`` and connects to the address that was checked: the
URL's host is replaced by that IP while the ``Host`` header and the TLS SNI (httpx's ``sni_hostname``
extension; the certificate is verified against the name) keep the original name, so a DNS answer that
changes between check and connect (rebinding) is never used.
"""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from quills.attribution.config.ssrf import TargetPolicy
from quills.attribution.postbacks.sinks import Due

__all__ = ("PartnerClient", "RetryableResponse", "PermanentResponse", "Response")


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


class PartnerClient:
    """Sends deliveries with one pooled ``httpx.AsyncClient``.

    Args:
        policy: where requests may go.
        max_connections: pooled connections in total (default 1000).
    """

    def __init__(self, policy: TargetPolicy, *, max_connections: int = 1000) -> None:
        self.policy = policy
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            limits=limits,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "quills-postbacks/1"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, due: Due) -> Response:
        """Send ``due`` once. Returns a 2xx ``Response``; raises ``RetryableResponse``,
        ``PermanentResponse``, ``UnsafeTarget`` or an ``httpx.TransportError`` (connection, timeout)."""
        host, port, ip = await self.policy.resolve(due.url)
        split = urlsplit(due.url)
        literal = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
        pinned = urlunsplit((split.scheme, f"{literal}:{port}", split.path, split.query, ""))
        default_port = 443 if split.scheme == "https" else 80
        headers = {**due.headers, "Host": host if port == default_port else f"{host}:{port}"}
        extensions = {"sni_hostname": host} if split.scheme == "https" else {}
        started = time.perf_counter()
        response = await self._client.request(
            due.method,
            pinned,
            content=due.body.encode() if due.body is not None else None,
            headers=headers,
            timeout=due.timeout_s,
            extensions=extensions,
        )
        await response.aclose()
        latency_ms = (time.perf_counter() - started) * 1000
        code = response.status_code
        if 200 <= code < 300:
            return Response(code, latency_ms)
        if code == 429 or code >= 500:
            raise RetryableResponse(code, response.headers.get("retry-after"))
        raise PermanentResponse(code)
