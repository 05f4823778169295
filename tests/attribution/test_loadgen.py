"""loadgen's arithmetic, its HTTP client against a loopback server, a run against the real ingest service,
and the database URL forms (runs under ``quills up`` are exercised by test_platform)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httptools
import pytest

from quills.attribution.db import Database
from quills.attribution.loadgen import (
    LoadgenOptions,
    LoadSummary,
    _Http1Client,
    _request_head,
    percentile,
    run_loadgen,
)

from .test_ingest_service import start_ingest, stop_ingest


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([], 99) == 0.0


def test_the_summary_line_names_every_outcome() -> None:
    line = LoadSummary(
        sent=10, accepted=7, rejected=1, unavailable=1, failed=1, requests=10, elapsed=2.0
    ).line()
    for part in ("sent 10 events", "accepted 7 (4/s)", "rejected 1", "unavailable 1", "failed 1", "p99"):
        assert part in line


def test_database_urls() -> None:
    assert Database("sqlite:///rel/q.db").path == "rel/q.db"
    assert Database("sqlite:////abs/q.db").path == "/abs/q.db"
    assert Database("/abs/q.db").path == "/abs/q.db"
    pg = Database("postgresql://u@h:5432/d")
    assert pg.is_postgres and pg.sql("a = ? AND b = ?") == "a = %s AND b = %s"


class Server:
    """A loopback HTTP/1.1 server for the client's tests: ``/ok`` answers 202 (kept alive), ``/close``
    answers 200 and closes, ``/hang`` never answers, ``/garbage`` answers something that is not HTTP."""

    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.bodies.append(await reader.readexactly(length))
                path = head.split(b" ")[1]
                if path == b"/ok":
                    writer.write(b'HTTP/1.1 202 Accepted\r\nContent-Length: 13\r\n\r\n{"accepted":1}'[:-1])
                elif path == b"/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    break
                elif path == b"/garbage":
                    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_the_http_client_keeps_connections_alive_and_reports_every_failure() -> None:
    async def run() -> None:
        server = Server()
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        client = _Http1Client(f"http://127.0.0.1:{port}", timeout=0.5)

        def head(path: str, body: bytes) -> bytes:
            return _request_head(client, path, b"Bearer k%d") % len(body)

        async def post(path: str, body: bytes = b"[]") -> int:
            return await client.post(head(path, body), body)

        assert [await post("/ok", b"[%d]" % i) for i in range(5)] == [202] * 5
        assert server.connections == 1 and server.bodies == [b"[%d]" % i for i in range(5)]
        assert await post("/close") == 200 and await post("/ok") == 202
        assert server.connections == 2, "a connection the server closed is not reused"
        assert await asyncio.gather(*(post("/ok") for _ in range(4))) == [202] * 4
        assert server.connections == 5, "concurrent requests each get a connection, idle ones are reused"
        with pytest.raises(TimeoutError):
            await post("/hang")
        with pytest.raises(httptools.HttpParserError):
            await post("/garbage")
        assert await post("/ok") == 202
        client.close()
        listener.close()
        await listener.wait_closed()
        with pytest.raises(OSError):
            await _Http1Client(f"http://127.0.0.1:{port}", timeout=1).post(head("/ok", b""), b"")

    asyncio.run(run())


def test_every_event_sent_reaches_the_ingest_service(tmp_path: Path) -> None:
    """loadgen's bodies and requests against the real ingest service: all accepted, single and batch."""
    ingest = start_ingest(tmp_path)
    try:
        for batch in (1, 50):
            options = LoadgenOptions(
                rate=500 * batch,
                duration=1.5,
                batch=batch,
                url=ingest.url,
                credentials=str(tmp_path / "credentials.json"),
                concurrency=4,
                seed=3,
            )
            out = io.StringIO()
            summary = asyncio.run(run_loadgen(options, out))
            assert summary.sent >= 100 * batch and summary.accepted == summary.sent
            assert summary.statuses == {"202": summary.requests} and "accepted" in out.getvalue()
            assert sum(summary.accepted_by_app.values()) == summary.sent
    finally:
        stop_ingest(ingest)
