"""``serve()``: a background server on loopback that stops cleanly."""

from __future__ import annotations

import socket

import httpx

import quills
from quills.monitor import serve

from .helpers import read_events


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
