"""Ingest routes: ``POST /v1/events`` and ``POST /v1/events/batch`` (raw ASGI, the hot path), and
``/healthz``, ``/openapi.json``, ``/metrics`` and ``/hystrix.stream`` (Starlette, mounted beside them).

Reads: HTTP requests. Writes: HTTP responses (after ``Publisher.publish`` returned for 202).

The two event routes are plain ASGI rather than Starlette routes: the body is read with a size cap as it
arrives, the key is checked before the body is read, and each request costs a few microseconds of
framework instead of tens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from quills.attribution.ingest import handlers
from quills.attribution.ingest.config import IngestConfig
from quills.attribution.ingest.messages import Accepted, Problem, encode
from quills.attribution.ingest.sinks import Publisher, Unavailable
from quills.attribution.keys import KeyRing, bearer_key

__all__ = ("IngestHttp", "IngestCounters")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("quills.attribution.ingest")

_SINGLE, _BATCH = "/v1/events", "/v1/events/batch"
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class IngestCounters:
    """What the service did since start (shown by ``/healthz``)."""

    requests: int = 0
    accepted_events: int = 0
    rejected_requests: int = 0
    unavailable_requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class IngestHttp:
    """The ASGI app of the ingest service; ``other`` serves every path but the two event routes."""

    def __init__(
        self,
        config: IngestConfig,
        keyring: Callable[[], KeyRing],
        publisher: Publisher,
        other: Asgi,
        *,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.config = config
        self.counters = IngestCounters()
        self._keyring = keyring
        self._publisher = publisher
        self._other = other
        self._now_ms = now_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and (path == _SINGLE or path == _BATCH):
            if scope["method"] != "POST":
                await self._respond(
                    send,
                    405,
                    Problem(error="method_not_allowed", detail=f"{path} accepts POST only"),
                    extra=[(b"allow", b"POST")],
                )
                return
            try:
                await self._ingest(scope, receive, send, batch=path == _BATCH)
            except Exception:
                log.exception("ingest request failed")
                await self._respond(send, 500, Problem(error="internal_error", detail="see the server log"))
            return
        await self._other(scope, receive, send)

    async def _ingest(self, scope: Scope, receive: Receive, send: Send, *, batch: bool) -> None:
        config = self.config
        authorization = content_type = ""
        length = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        key = bearer_key(authorization)
        if key is None:
            await self._respond(
                send,
                401,
                Problem(error="unauthorized", detail="send 'Authorization: Bearer <app key>'"),
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        app_id = self._keyring().app_of(key)
        if app_id is None:
            await self._respond(
                send,
                401,
                Problem(error="unauthorized", detail="unknown key; an app's ingest key is required"),
                extra=[(b"www-authenticate", b'Bearer error="invalid_token"')],
            )
            return
        if length > config.max_body_bytes:
            await self._too_large(send)
            return
        try:
            body = await _read_body(receive, config.max_body_bytes)
        except _TooLarge:
            await self._too_large(send)
            return
        if batch:
            parsed = handlers.parse_batch(body, content_type, config.max_batch_events)
        else:
            parsed = handlers.parse_single(body, content_type)
        now = self._now_ms()
        if isinstance(parsed, handlers.Refusal):
            await self._respond(send, parsed.status, parsed.problem)
            return
        refusal = handlers.check(parsed, app_id, now, int(config.max_future_seconds * 1000), batch=batch)
        if refusal is not None:
            await self._respond(send, refusal.status, refusal.problem)
            return
        handlers.stamp(parsed, now)
        try:
            await self._publisher.publish(handlers.encode_by_topic(parsed), app_id.encode())
        except Unavailable as exc:
            self.counters.unavailable_requests += 1
            await self._respond(
                send,
                503,
                Problem(error="unavailable", detail=f"{exc}; nothing was accepted, retry later"),
                extra=[(b"retry-after", str(exc.retry_after).encode())],
            )
            return
        self.counters.accepted_events += len(parsed)
        await self._respond(send, 202, Accepted(accepted=len(parsed)))

    async def _too_large(self, send: Send) -> None:
        limit = self.config.max_body_bytes
        await self._respond(
            send,
            413,
            Problem(error="payload_too_large", detail=f"the body is larger than {limit} bytes"),
            extra=[(b"connection", b"close")],
        )

    async def _respond(
        self,
        send: Send,
        status: int,
        body: Accepted | Problem,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        counters = self.counters
        counters.requests += 1
        counters.by_status[status] = counters.by_status.get(status, 0) + 1
        if status >= 400:
            counters.rejected_requests += 1
        data = encode(body)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _TooLarge
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)
