"""Bad instance data is skipped and counted and never stops the aggregator: non-JSON lines, documents
without type or name, a stream that hangs, and an endpoint that answers an error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

import quills
from quills.monitor import StaticDiscovery, TurbineMonitor, serve

from .helpers import UvicornThread, read_until

Scope = MutableMapping[str, Any]


async def _bad_instance(
    scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    """A real HTTP server that misbehaves in every way the aggregator must survive."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/error/hystrix.stream":
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"boom"})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    if path == "/hang/hystrix.stream":
        while (await receive())["type"] != "http.disconnect":  # headers, then silence until the client goes
            pass
        return
    junk = (
        b"data: {not json\n\n"
        b"data: [1,2,3]\n\n"
        b'data: {"type":"HystrixCommand"}\n\n'
        b"data: no object here\n\n"
        b'data: {"name":"x","group":"g"}\n\n'
        b'data: {"type":"HystrixCommand","name":"junk_but_valid","group":"g","rollingCountSuccess":4}\n\n'
    )
    while True:
        await send({"type": "http.response.body", "body": junk, "more_body": True})
        try:
            if (await asyncio.wait_for(receive(), 0.2))["type"] == "http.disconnect":
                return
        except TimeoutError:
            pass


def test_bad_data_is_skipped_and_counted_while_good_hosts_are_aggregated() -> None:
    registry = quills.Registry()

    @quills.command(group="g", name="good", registry=registry, isolation="semaphore")
    def good() -> int:
        return 1

    for _ in range(3):
        good()
    with serve(registry=registry, interval=0.1) as healthy, UvicornThread(_bad_instance) as bad:
        hosts = [
            f"127.0.0.1:{healthy.port}",
            f"http://127.0.0.1:{bad.port}/junk/hystrix.stream",
            f"http://127.0.0.1:{bad.port}/hang/hystrix.stream",
            f"http://127.0.0.1:{bad.port}/error/hystrix.stream",
            "127.0.0.1:1",  # nothing listens there
        ]
        monitor = TurbineMonitor(
            StaticDiscovery(hosts), interval=0.1, retry_interval=0.2, read_timeout=0.5, clusters=["default"]
        )
        with UvicornThread(monitor.app) as aggregator:
            stream = aggregator.base + "/turbine.stream?cluster=default"
            doc = read_until(stream, lambda d: d.get("name") == "good")
            assert doc["rollingCountSuccess"] == 3 and doc["reportingHosts"] == 1
            junk = read_until(stream, lambda d: d.get("name") == "junk_but_valid")
            assert junk["rollingCountSuccess"] == 4
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                health = httpx.get(aggregator.base + "/health", timeout=5).json()
                bad_counts = health["bad"]
                if bad_counts["stalled"] >= 1 and bad_counts["status"] >= 1 and bad_counts["connection"] >= 1:
                    break
                time.sleep(0.1)
            assert (
                bad_counts["json"] >= 3
            )  # "{not json", "no object here", "[1,2,3]"-is-json-but-counted below
            assert bad_counts["fields"] >= 3  # the array and the two documents lacking type or name
            assert bad_counts["stalled"] >= 1 and bad_counts["status"] >= 1 and bad_counts["connection"] >= 1
            assert health["reconnects"] >= 1
            # still serving, still aggregating
            again = read_until(stream, lambda d: d.get("name") == "good")
            assert again["rollingCountSuccess"] == 3
            metrics = httpx.get(aggregator.base + "/metrics", timeout=5).text
            assert 'quills_monitor_bad_input_total{reason="stalled"}' in metrics
            assert "quills_monitor_reconnects_total" in metrics
