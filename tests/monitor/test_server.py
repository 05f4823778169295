"""``serve()``: a background server on loopback that stops cleanly."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx

import quills
from quills.monitor import serve

from .helpers import InstanceProcess, read_events

Start = Callable[..., InstanceProcess]


def test_serve_binds_loopback_on_a_free_port_and_serves_the_stream() -> None:
    registry = quills.Registry()

    @quills.command(group="g", name="work", registry=registry, isolation="semaphore")
    def work() -> None:
        return None

    work()
    with serve(registry=registry) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/hystrix.stream"
        events = read_events(server.url, count=1)
    assert events[0]["name"] == "work"


def test_close_ends_open_streams_and_frees_the_port() -> None:
    server = serve(registry=quills.Registry(), ping_interval=0.05)
    port = server.port
    with httpx.stream("GET", server.url, timeout=10) as response:
        assert response.status_code == 200
        server.close()
        body = b"".join(response.iter_raw())  # ends instead of hanging
    assert b"no commands yet" in body
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_real_instance_process_streams_its_healthy_and_failing_commands(instances: Start) -> None:
    process = instances("--ok", "12", "--fail", "4")
    events = read_events(process.url, count=3)
    by_name = {event["name"]: event for event in events}
    healthy, failing, pool = by_name["get_user"], by_name["charge"], by_name["users"]
    assert healthy["type"] == "HystrixCommand" and healthy["rollingCountSuccess"] == 12
    assert healthy["requestCount"] == 12 and healthy["errorPercentage"] == 0
    assert failing["rollingCountFailure"] == 4 and failing["rollingCountFallbackSuccess"] == 4
    assert failing["errorCount"] == 4 and failing["errorPercentage"] == 100
    assert failing["isCircuitBreakerOpen"] is False  # 4 requests are below the volume threshold of 20
    assert pool["type"] == "HystrixThreadPool" and pool["rollingCountThreadsExecuted"] == 12
    now_ms = time.time() * 1000
    assert abs(healthy["currentTime"] - now_ms) < 5000
    for event in events:
        assert event["reportingHosts"] == 1
    metrics = httpx.get(f"http://127.0.0.1:{process.port}/metrics", timeout=5).text
    assert (
        'quills_command_rolling_events{command="charge",event="failure",group="payments",pool="payments"} 4.0'
        in (metrics)
    )
