"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and the
body on ``http.response.body``: two ``write`` system calls. On this machine a write to a loopback socket
costs ~12 us of CPU, a sixth of a single-event request's cost. Here the connection's transport holds
what is written during one turn of the event loop and writes it at once at the end of the turn, so a
response (start and body are sent back to back) goes out in one call. Nothing waits longer than that
turn, and ``close()`` writes what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ("OneWriteHttpToolsProtocol",)


class _OneWriteTransport:
    """A transport that defers writes to the end of the loop turn; everything else goes to ``inner``."""

    __slots__ = ("_held", "_inner", "_loop")

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = [data]
            self._loop.call_soon(self._write_held)
        else:
            held.append(data)

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if held and not self._inner.is_closing():
            self._inner.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._write_held()
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """Pass as ``uvicorn.Config(http=...)``: the httptools protocol on a ``_OneWriteTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _OneWriteTransport(transport, self.loop)))
