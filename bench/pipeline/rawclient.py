"""A minimal HTTP/1.1 keep-alive load client (asyncio streams, uvloop): fast enough that the server, not
the client, is what a benchmark measures (httpx spends ~200 us of Python per request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RawResult:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(
    host: str, port: int, next_request: Callable[[], bytes | None], result: RawResult, sample: int
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while True:
            request = next_request()
            if request is None:
                return
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            result.requests += 1
            result.by_status[status] = result.by_status.get(status, 0) + 1
            n += 1
            if n % sample == 0:
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        writer.close()


async def hammer(
    host: str, port: int, requests: list[bytes], *, duration: float, connections: int, sample: int = 1
) -> RawResult:
    """Send ``requests`` round robin on ``connections`` keep-alive connections for ``duration`` seconds."""
    result = RawResult()
    deadline = time.perf_counter() + duration
    i = 0

    def next_request() -> bytes | None:
        nonlocal i
        if time.perf_counter() >= deadline:
            return None
        i += 1
        return requests[i % len(requests)]

    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, next_request, result, sample) for _ in range(connections)))
    result.elapsed = time.perf_counter() - t0
    return result
