"""Load clients for the pipeline benchmarks, sending pre-built raw HTTP/1.1 requests on keep-alive
connections: ``wrk`` (C, one thread: ~10 us of CPU a request, so the server under test can have a core)
driven by ``requests.lua``, and ``hammer`` (asyncio streams + uvloop, ~60-100 us of Python a request,
for the end-to-end run, which needs no more than ~1k requests/s)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).with_name("requests.lua")


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
    host: str,
    port: int,
    next_request: Callable[[], tuple[bytes, float] | None],
    result: RawResult,
    sample: int,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while True:
            slot = next_request()
            if slot is None:
                return
            request, due = slot
            t0 = time.perf_counter()
            if due > t0:
                await asyncio.sleep(due - t0)
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
    host: str,
    port: int,
    requests: list[bytes],
    *,
    duration: float,
    connections: int,
    sample: int = 1,
    rate: float | None = None,
) -> RawResult:
    """Send ``requests`` round robin on ``connections`` keep-alive connections for ``duration`` seconds:
    as fast as they are answered, or at most ``rate`` requests per second (each request has its slot
    on a fixed schedule; a connection that falls behind sends at once until it catches up)."""
    result = RawResult()
    t0 = time.perf_counter()
    deadline = t0 + duration
    i = 0

    def next_request() -> tuple[bytes, float] | None:
        nonlocal i
        if time.perf_counter() >= deadline:
            return None
        i += 1
        due = t0 + i / rate if rate else 0.0
        return requests[i % len(requests)], due

    await asyncio.gather(*(_connection(host, port, next_request, result, sample) for _ in range(connections)))
    result.elapsed = time.perf_counter() - t0
    return result


@dataclass
class WrkResult:
    requests: int
    ok: int  # 2xx answers
    elapsed: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    client_cpu: float  # CPU seconds wrk used


def write_requests(path: Path, requests: list[bytes]) -> Path:
    """Store ``requests`` for ``requests.lua``: records of ``<length>\\n<raw request bytes>``."""
    with open(path, "wb") as out:
        for request in requests:
            out.write(b"%d\n" % len(request))
            out.write(request)
    return path


def wrk(port: int, requests_file: Path, *, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """Run wrk against 127.0.0.1:``port`` for ``seconds`` with the requests in ``requests_file``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (the Makefile target does this)")
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s"]
    argv += ["-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(requests_file)]
    before = os.times()
    out = subprocess.run(argv, capture_output=True, check=True, text=True).stdout
    after = os.times()
    line = next(x for x in out.splitlines() if x.startswith("{"))
    r = json.loads(line)
    errors = {k: r[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts")}
    return WrkResult(
        requests=r["requests"],
        ok=r["requests"] - r["non_2xx"],
        elapsed=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        errors={k: v for k, v in errors.items() if v},
        client_cpu=(after.children_user + after.children_system)
        - (before.children_user + before.children_system),
    )
