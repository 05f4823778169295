"""``quills loadgen``: realistic traffic (``quills.attribution.traffic``) against the ingest API, at a
steady rate, with a live progress line and a final summary.

Open loop: request ``k`` is due at ``k * batch / rate`` seconds; at most ``concurrency`` requests are in
flight, so an overloaded service shows up as a lower achieved rate and higher latency, not as a pile of
client tasks. Each request carries events of one app (a key belongs to one app). Bodies come from an
``EventPool`` of the traffic model (fresh ids, times and devices on pooled events, a whole body in one
``%``) and go out through aiohttp (keep-alive connections, no cookie jar, headers built once), so the
generator itself stays cheap next to the services it loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp

from quills.attribution.traffic import DemoApp, EventPool, TrafficModel
from quills.errors import ConfigError

__all__ = ("LoadgenOptions", "LoadSummary", "run_loadgen", "percentile", "summary_json")


@dataclass(frozen=True)
class LoadgenOptions:
    """What to send.

    Args:
        rate: events per second, > 0 (up to 1e7).
        duration: seconds to send for, > 0 (up to 1 week).
        batch: events per request, 1..1000 (default 1: ``POST /v1/events``; more: ``/v1/events/batch``).
        url: the ingest service (default ``http://127.0.0.1:8080``).
        credentials: ``credentials.json`` with the app keys (default ``<data_dir>/credentials.json``).
        concurrency: requests in flight at most, 1..10,000 (default 64).
        seed: random seed (default: a fresh one).
        timeout: seconds per request, > 0 (default 30).
    """

    rate: float
    duration: float
    batch: int = 1
    url: str = "http://127.0.0.1:8080"
    credentials: str = ".quills/credentials.json"
    concurrency: int = 64
    seed: int | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate) and self.rate <= 1e7):
            raise ConfigError(f"--rate must be > 0 events per second (at most 1e7), got {self.rate}")
        if not (self.duration > 0 and math.isfinite(self.duration) and self.duration <= 7 * 86400):
            raise ConfigError(f"--duration must be > 0 seconds (at most a week), got {self.duration}")
        if not 1 <= self.batch <= 1000:
            raise ConfigError(f"--batch must be 1..1000 events per request, got {self.batch}")
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigError(f"--concurrency must be 1..10000, got {self.concurrency}")
        if not self.timeout > 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout}")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"--url must be http(s)://host:port, got {self.url!r}")


@dataclass
class LoadSummary:
    """What happened: events sent/accepted/rejected/unavailable (503)/failed (no answer), requests,
    seconds, latency percentiles in ms, and accepted events per app."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: int = 0
    failed: int = 0
    requests: int = 0
    elapsed: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    accepted_by_app: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        rate = self.accepted / self.elapsed if self.elapsed else 0.0
        return (
            f"sent {self.sent} events in {self.requests} requests over {self.elapsed:.1f}s: "
            f"accepted {self.accepted} ({rate:,.0f}/s), rejected {self.rejected}, "
            f"unavailable {self.unavailable}, failed {self.failed}; "
            f"latency p50 {self.latency_p50_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms"
        )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _load_apps(path: str) -> tuple[list[DemoApp], dict[str, str]]:
    try:
        creds = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no credentials at {path}; start the platform with 'quills up' first") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read credentials {path}: {exc}") from None
    apps = creds.get("apps") or {}
    if not apps:
        raise ConfigError(f"{path} lists no apps")
    # Credentials list the demo apps busiest first, as the traffic model ranks them.
    return [DemoApp(a, v["platform"]) for a, v in apps.items()], {a: v["key"] for a, v in apps.items()}


async def run_loadgen(options: LoadgenOptions, out: TextIO | None = None) -> LoadSummary:
    """Send the traffic and return the summary (progress goes to ``out``, default stdout)."""
    out = out or sys.stdout
    apps, keys = _load_apps(options.credentials)
    model = TrafficModel(apps, random.Random(options.seed))
    pool = EventPool(model)
    summary = LoadSummary()
    by_app: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    path = "/v1/events" if options.batch == 1 else "/v1/events/batch"
    interval = options.batch / options.rate
    total = max(1, round(options.duration / interval))
    slots = asyncio.Semaphore(options.concurrency)
    is_tty = out.isatty()
    started = time.perf_counter()
    # aiohttp, not httpx: a 100 KiB batch body costs httpx ~5-8 ms of CPU a request here, aiohttp
    # ~0.15-0.3 ms (~1 us an event in batches of 200), and the generator must leave the cores to the
    # services it loads. No cookie jar and no decompression: neither is of use here.
    connector = aiohttp.TCPConnector(limit=options.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=options.timeout)
    headers_of = {
        app_id: {"authorization": f"Bearer {key}", "content-type": "application/json"}
        for app_id, key in keys.items()
    }
    url = options.url.rstrip("/") + path

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as client:

        async def send(app: DemoApp, body: bytes, n: int) -> None:
            t0 = time.perf_counter()
            try:
                async with client.post(url, data=body, headers=headers_of[app.app_id]) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                summary.failed += n
                statuses[type(exc).__name__] += 1
            else:
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[str(status)] += 1
                if status == 202:
                    summary.accepted += n
                    by_app[app.app_id] += n
                elif status == 503:
                    summary.unavailable += n
                else:
                    summary.rejected += n
            finally:
                slots.release()

        loop = asyncio.get_running_loop()
        progress = loop.create_task(_progress(summary, started, options, out, is_tty))
        tasks: set[asyncio.Task[None]] = set()
        # Ctrl-C ends the run early but still waits for the answers in flight and prints the summary.
        interrupted = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, interrupted.set)
        try:
            for k in range(total):
                # Behind schedule (an overloaded service or generator), the run still ends on time: what
                # was not sent by then is not sent, and the achieved rate shows the shortfall.
                if interrupted.is_set() or time.perf_counter() - started >= options.duration:
                    break
                due = started + k * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                app = model.app()
                now_ms = time.time_ns() // 1_000_000
                if options.batch == 1:
                    body = pool.events(app, 1, now_ms)[0]
                else:
                    body = pool.body(app, options.batch, now_ms)
                summary.sent += options.batch
                summary.requests += 1
                task = asyncio.get_running_loop().create_task(send(app, body, options.batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
    summary.elapsed = time.perf_counter() - started
    summary.latency_p50_ms = round(percentile(latencies, 50), 3)
    summary.latency_p99_ms = round(percentile(latencies, 99), 3)
    summary.statuses = dict(statuses)
    summary.accepted_by_app = dict(by_app)
    if is_tty:
        out.write("\n")
    out.write(summary.line() + "\n")
    out.flush()
    return summary


async def _progress(
    summary: LoadSummary, started: float, options: LoadgenOptions, out: TextIO, tty: bool
) -> None:
    period = 0.5 if tty else 5.0
    while True:
        await asyncio.sleep(period)
        elapsed = time.perf_counter() - started
        done = min(1.0, elapsed / options.duration)
        rate = summary.accepted / elapsed if elapsed else 0.0
        if tty:
            bar = "#" * int(done * 30)
            out.write(
                f"\r[{bar:<30}] {done * 100:5.1f}%  sent {summary.sent}  accepted {summary.accepted} "
                f"({rate:,.0f}/s)  rejected {summary.rejected}  unavailable {summary.unavailable}  "
                f"failed {summary.failed} "
            )
        else:
            out.write(
                f"{elapsed:7.1f}s sent {summary.sent} accepted {summary.accepted} ({rate:,.0f}/s) "
                f"rejected {summary.rejected} unavailable {summary.unavailable} failed {summary.failed}\n"
            )
        out.flush()


def summary_json(summary: LoadSummary) -> str:
    """The summary as JSON (``--summary-json``)."""
    return json.dumps(asdict(summary), indent=1)
