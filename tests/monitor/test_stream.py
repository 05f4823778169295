"""The instance stream over real HTTP, through both front doors: ASGI (uvicorn, mounted in Starlette) and
WSGI (wsgiref, via ``serve()``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

import quills
from quills.errors import ConfigError
from quills.monitor import hystrix_stream_app, serve
from quills.monitor.stream import StreamOptions, delay_of, endpoint_of

from .helpers import UvicornThread, read_events

Server = Callable[..., contextlib.AbstractContextManager[str]]


@contextlib.contextmanager
def _asgi(registry: quills.Registry, **options: Any) -> Iterator[str]:
    app = Starlette(routes=[Mount("/ops", hystrix_stream_app(registry, **options))])
    with UvicornThread(app) as server:
        yield server.base + "/ops"


@contextlib.contextmanager
def _wsgi(registry: quills.Registry, **options: Any) -> Iterator[str]:
    with serve(registry=registry, **options) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(params=["asgi", "wsgi"])
def server(request: pytest.FixtureRequest) -> Server:
    return _asgi if request.param == "asgi" else _wsgi


def _registry() -> quills.Registry:
    registry = quills.Registry()

    @quills.command(group="users", name="get_user", registry=registry)
    def get_user() -> int:
        return 1

    @quills.command(group="pay", name="charge", registry=registry, isolation="semaphore", fallback=lambda: 0)
    def charge() -> int:
        raise ConnectionError("down")

    for _ in range(5):
        get_user()
        charge()
    return registry


def test_stream_sends_commands_then_pools_with_hystrix_headers(server: Server) -> None:
    with server(_registry()) as base, httpx.stream("GET", base + "/hystrix.stream", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream;charset=UTF-8"
        assert response.headers["cache-control"] == "no-cache, no-store, max-age=0, must-revalidate"
        assert response.headers["pragma"] == "no-cache"
        assert "access-control-allow-origin" not in response.headers
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if len([x for x in lines if x.startswith("ping:")]) >= 2:
                break
    data = [line for line in lines if line.startswith("data: {")]
    assert '"type":"HystrixCommand","name":"get_user"' in data[0]
    assert '"type":"HystrixCommand","name":"charge"' in data[1]
    assert '"type":"HystrixThreadPool","name":"users"' in data[2]
    assert "ping: " in lines


def test_two_ticks_arrive_about_one_interval_apart(server: Server) -> None:
    with server(_registry(), interval=0.2) as base:
        start = time.monotonic()
        events = read_events(base + "/hystrix.stream", count=6)  # 3 documents per tick: two ticks
        elapsed = time.monotonic() - start
    assert [e["name"] for e in events] == ["get_user", "charge", "users"] * 2
    assert 0.15 <= elapsed < 3.0


def test_stream_before_any_command_says_so(server: Server) -> None:
    with server(quills.Registry()) as base:
        events = read_events(base + "/hystrix.stream", count=1)
    assert events[0]["type"] == "quills_status" and events[0]["message"] == "no commands yet"


def test_dashboard_style_delay_glued_to_the_path_is_tolerated(server: Server) -> None:
    with server(_registry()) as base:
        events = read_events(base + "/hystrix.stream&delay=100", count=1)
        more = read_events(base + "/hystrix.stream?delay=abc", count=1)
    assert events[0]["name"] == "get_user" and more[0]["name"] == "get_user"


def test_cors_header_is_sent_when_configured(server: Server) -> None:
    with server(_registry(), cors_origin="https://dash.example") as base:
        with httpx.stream("GET", base + "/hystrix.stream", timeout=10) as response:
            assert response.headers["access-control-allow-origin"] == "https://dash.example"


def test_sixth_client_gets_503_and_a_freed_slot_is_reused(server: Server) -> None:
    with server(_registry(), ping_interval=0.1) as base, httpx.Client(timeout=10) as client:
        with contextlib.ExitStack() as stack:
            streams = [stack.enter_context(client.stream("GET", base + "/hystrix.stream")) for _ in range(5)]
            assert all(s.status_code == 200 for s in streams)
            sixth = client.get(base + "/hystrix.stream")
            assert sixth.status_code == 503
            assert sixth.text == "MaxConcurrentConnections reached: 5"
            head = client.head(base + "/hystrix.stream")  # HEAD never takes a slot (Hystrix #1369)
            assert head.status_code == 200
        # all five closed: within a ping or two the server notices and frees the slots
        deadline = time.monotonic() + 5
        statuses = []
        while time.monotonic() < deadline:
            with contextlib.ExitStack() as stack:
                again = [
                    stack.enter_context(client.stream("GET", base + "/hystrix.stream")) for _ in range(5)
                ]
                statuses = [s.status_code for s in again]
            if statuses == [200] * 5:
                break
            time.sleep(0.2)
        assert statuses == [200] * 5


def test_connection_cap_is_configurable(server: Server) -> None:
    with server(_registry(), max_connections=1) as base, httpx.Client(timeout=10) as client:
        with client.stream("GET", base + "/hystrix.stream") as first:
            assert first.status_code == 200
            second = client.get(base + "/hystrix.stream")
            assert second.status_code == 503 and second.text.endswith(": 1")


def test_metrics_endpoint_serves_prometheus_text(server: Server) -> None:
    with server(_registry()) as base:
        response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'quills_command_rolling_events{command="charge",event="failure",group="pay",pool="pay"} 5.0' in (
        response.text
    )


def test_other_paths_are_not_found(server: Server) -> None:
    with server(_registry()) as base:
        assert httpx.get(base + "/nope", timeout=10).status_code == 404
        assert httpx.post(base + "/hystrix.stream", timeout=10).status_code == 405


def test_asgi_app_routed_at_the_stream_path_serves_it() -> None:
    app = Starlette(routes=[Route("/hystrix.stream", hystrix_stream_app(_registry(), prometheus=False))])
    with UvicornThread(app) as server:
        events = read_events(server.base + "/hystrix.stream", count=1)
        assert httpx.get(server.base + "/metrics", timeout=10).status_code == 404
    assert events[0]["name"] == "get_user"


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/hystrix.stream", "", "stream"),
        ("/ops/hystrix.stream", "/ops", "stream"),
        ("/hystrix.stream&delay=2000", "", "stream"),
        ("/", "/hystrix.stream", "stream"),
        ("", "/hystrix.stream", "stream"),
        ("/metrics", "", "metrics"),
        ("/other", "", None),
        ("/hystrix.streamx", "", None),
    ],
)
def test_endpoint_of_accepts_the_ways_the_stream_is_reached(
    path: str, root: str, expected: str | None
) -> None:
    assert endpoint_of(path, root) == expected


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/hystrix.stream", "", 0.5),
        ("/hystrix.stream", "delay=2000", 2.0),
        ("/hystrix.stream&delay=100", "", 0.1),
        ("/hystrix.stream", "delay=1", 0.05),
        ("/hystrix.stream", "delay=999999999", 60.0),
        ("/hystrix.stream", "delay=nan", 0.5),
        ("/hystrix.stream", "delay=fast", 0.5),
    ],
)
def test_delay_is_read_and_clamped(path: str, query: str, expected: float) -> None:
    assert delay_of(path, query, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(
    "options",
    [
        {"interval": 0},
        {"interval": float("nan")},
        {"ping_interval": 120},
        {"max_connections": 0},
        {"max_connections": True},
        {"cors_origin": ""},
        {"cors_origin": "a\nb"},
    ],
)
def test_invalid_stream_options_are_refused_with_the_field_named(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        StreamOptions(**options)


def test_a_faster_delay_gets_fresh_ticks_not_repeats(server: Server) -> None:
    with server(_registry(), interval=2.0) as base:
        events = read_events(base + "/hystrix.stream?delay=100", count=9)
    times = [event["currentTime"] for event in events if event["name"] == "get_user"]
    assert len(times) == 3 and times[0] < times[1] < times[2]


def test_cors_preflight_and_503_carry_the_origin_when_configured(server: Server) -> None:
    with server(_registry(), cors_origin="*", max_connections=1) as base, httpx.Client(timeout=10) as client:
        preflight = client.options(base + "/hystrix.stream")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "GET" in preflight.headers["access-control-allow-methods"]
        with client.stream("GET", base + "/hystrix.stream") as first:
            assert first.status_code == 200
            refused = client.get(base + "/hystrix.stream")
        assert refused.status_code == 503 and refused.headers["access-control-allow-origin"] == "*"


def test_preflight_is_refused_when_cors_is_off(server: Server) -> None:
    with server(_registry()) as base:
        response = httpx.options(base + "/hystrix.stream", timeout=10)
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers
