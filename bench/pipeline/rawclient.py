"""The ingest benchmark's load client: pre-built raw HTTP/1.1 requests sent on keep-alive connections by
``wrk`` (C, one thread: ~10 us of CPU a request, so the server under test can have a core), driven by
``requests.lua``. (The end-to-end run uses ``quills loadgen`` itself.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("requests.lua")


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


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
