"""A small HTTP/1.1 client for postbacks: keep-alive connections per origin, each request written in one
piece, each answer parsed by httptools (llhttp) keeping only its status and ``Retry-After``.

Why not aiohttp (used here before): a postback is one short request whose answer is only a status, and
aiohttp's general machinery (request and response objects, header multidicts, cookie and proxy handling,
timer contexts, a stream reader for the body) cost about twice the CPU of the bare socket work per
request (docs/postbacks.md, "Throughput"). Sending is most of a delivery's CPU, and a postbacks process
is bound to one core by the GIL.

What it does: ``GET``/``POST`` with a ``Content-Length`` body; a total timeout covering connect, send and
answer; TLS with certificate and host-name checks (``ssl.create_default_context()`` unless given); up to
``max_idle`` idle connections per origin, closed after ``keepalive`` seconds unused; a request that meets
a reused connection the server had already closed is sent once more on a new one (the common keep-alive
race; nothing of an answer had arrived). What it never does: follow redirects (a 3xx is an answer), keep
or send cookies, use a proxy or ``*_proxy`` variables, decompress, or keep an answer's body (it is parsed
and dropped). Where it connects is decided by ``resolve(host, port)``, called for every new connection:
the caller checks the addresses there (SSRF) and the connection goes to exactly those addresses.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httptools

__all__ = ("ConnectionPool", "Origin", "ProtocolError", "Answer")

Answer = tuple[int, str | None]
"""An answer: its status code and its ``Retry-After`` header (None if absent)."""

Origin = tuple[str, str, int]
"""Where a request goes: ``(scheme, host, port)``, host as in the URL (brackets stripped from IPv6)."""

_MAX_HEAD = 64 * 1024  # an answer's status line and headers larger than this are refused


class ProtocolError(Exception):
    """The partner's answer was not HTTP/1.x, was too large, or the connection closed before it came."""


class _Stale(ProtocolError):
    """A reused connection closed before any byte of an answer arrived (the request may be sent again)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time."""

    __slots__ = (
        "_head_bytes",
        "_parser",
        "_pool",
        "_received",
        "_retry_after",
        "_status",
        "_waiter",
        "closed",
        "idle_since",
        "origin",
        "reusable",
        "transport",
    )

    def __init__(self, pool: ConnectionPool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._status = 0  # of the answer being read; 0 until its headers are complete
        self._retry_after: str | None = None
        self._head_bytes = 0
        self._received = False  # any byte of an answer to the current request
        self.closed = False
        self.idle_since = 0.0
        self.reusable = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for (between requests): the connection is unusable
            self._fail(ProtocolError("the partner sent data without a request"))
            return
        self._received = True
        if not self._status:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._fail(ProtocolError(f"answer headers larger than {_MAX_HEAD} bytes"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(self._parser.get_status_code(), reusable=False)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._lost(self)
        if self._waiter is not None and not self._waiter.done():
            if self._status >= 200:
                # an answer without a length ends with the connection
                self._finish(self._status, reusable=False)
            elif self._received:
                self._waiter.set_exception(ProtocolError("connection closed during the answer"))
            else:
                self._waiter.set_exception(_Stale(f"connection closed before an answer ({exc or 'EOF'})"))

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self._retry_after = value[:64].decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_message_complete(self) -> None:
        status = self._status
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._status, self._retry_after, self._head_bytes = 0, None, 0
            return
        self._finish(status, reusable=self._parser.should_keep_alive())

    # -- requests ------------------------------------------------------------------------------------
    def _finish(self, status: int, *, reusable: bool) -> None:
        waiter = self._waiter
        self.reusable = reusable and not self.closed
        if waiter is not None and not waiter.done():
            waiter.set_result((status, self._retry_after))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, data: bytes, deadline: float, loop: asyncio.AbstractEventLoop) -> Answer:
        """Write ``data`` (a whole request) and wait for the answer until ``deadline`` (loop time)."""
        assert self.transport is not None
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._status, self._retry_after, self._head_bytes, self._received = 0, None, 0, False
        self.reusable = False
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            self.transport.write(data)
            return await waiter
        except BaseException:
            # timed out, cancelled (the command's deadline) or failed: this connection is done
            self.abort()
            raise
        finally:
            timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer within the timeout"))


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, per origin.

    Args:
        resolve: ``await resolve(host, port)`` gives the addresses a new connection may use (tried in
            order); it raises to refuse the host. Called for every new connection, never cached here.
        ssl_context: for ``https`` (default ``ssl.create_default_context()``: certificates and host
            names checked, TLS 1.2 or later).
        max_idle: idle connections kept per origin, 0..10000 (default 100).
        keepalive: seconds an idle connection is kept, 0..3600 (default 15; servers often close theirs
            after 5 to 75 s, and a request that meets a just-closed one is sent again).
    """

    def __init__(
        self,
        resolve: Callable[[str, int], Awaitable[list[str]]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 100,
        keepalive: float = 15.0,
    ) -> None:
        if not 0 <= max_idle <= 10_000:
            raise ValueError(f"max_idle must be 0..10000, got {max_idle}")
        if not 0 <= keepalive <= 3600:
            raise ValueError(f"keepalive must be 0..3600 s, got {keepalive}")
        self._resolve = resolve
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ssl = ssl_context
        self._max_idle = max_idle
        self._keepalive = keepalive
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or in use)."""
        return len(self._open)

    async def request(self, origin: Origin, data: bytes, time_limit: float) -> Answer:
        """Send ``data`` (a whole HTTP/1.1 request) to ``origin``; the answer within ``time_limit`` seconds
        (connect included). Raises ``TimeoutError``, ``OSError`` (refused, reset, TLS) or
        ``ProtocolError``, or whatever ``resolve`` raises."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + time_limit
        conn = self._take_idle(origin, now)
        if conn is not None:
            try:
                answer = await conn.exchange(data, deadline, loop)
            except _Stale:
                pass  # the server closed it while it was idle: once more, on a new connection
            else:
                self._release(conn, loop)
                return answer
        conn = await self._connect(origin, deadline, loop)
        try:
            answer = await conn.exchange(data, deadline, loop)
        except _Stale as exc:  # a new connection closed before answering: that is the partner's answer
            raise ProtocolError(str(exc)) from None
        self._release(conn, loop)
        return answer

    async def aclose(self) -> None:
        """Close every connection (idle and in use)."""
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        self._idle.clear()

    def _take_idle(self, origin: Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed by the server
            if not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            conn.abort()
        return None

    def _release(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        if not conn.reusable or conn.closed:
            conn.abort()
            return
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= self._max_idle:
            conn.abort()
            return
        conn.idle_since = loop.time()
        idle.append(conn)

    def _lost(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def _connect(self, origin: Origin, deadline: float, loop: asyncio.AbstractEventLoop) -> _Connection:
        scheme, host, port = origin
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no time left to connect")
        async with asyncio.timeout_at(deadline):
            addresses = await self._resolve(host, port)
            error: OSError | None = None
            for address in addresses:
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, origin),
                        address,
                        port,
                        ssl=self._ssl if scheme == "https" else None,
                        # the name for SNI and the certificate check; the address is the checked one
                        server_hostname=host if scheme == "https" else None,
                    )
                except OSError as exc:
                    error = exc
                    continue
                self._open.add(conn)
                return conn
        raise error or OSError(f"{host} has no address to connect to")
