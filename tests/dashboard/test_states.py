"""States a user understands: waiting, too many clients (503), connection lost, not found; several streams.

These tests run the instance server (``serve()``) and the aggregator in this process, on real loopback
HTTP, so they can start, fill and stop them at will.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import quills
from quills.monitor import FileDiscovery, TurbineMonitor, serve, tick_documents
from quills.monitor.dashboard import dashboard_asgi

from .helpers import BROWSER_TIMEOUT, UvicornThread

EMPTY_TEXT = "document.querySelector('#empty').textContent"

pytestmark = pytest.mark.timeout(BROWSER_TIMEOUT)


def _registry_with_commands(*names: str) -> quills.Registry:
    registry = quills.Registry()
    for name in names:

        @quills.command(group="g", name=name, registry=registry, metrics_window=60.0)
        def call() -> int:
            return 1

        for _ in range(5):
            call()
    return registry


@pytest.fixture
def busy_registry() -> quills.Registry:
    return _registry_with_commands("alpha", "beta")


def test_page_says_waiting_for_the_first_command_until_one_runs(page: Page) -> None:
    registry = quills.Registry()
    with serve(port=0, registry=registry) as server:
        page.goto(server.dashboard_url)
        page.wait_for_function(f"{EMPTY_TEXT}.startsWith('Waiting for the first command')")
        expect(page.locator("#streams .stream-state")).to_have_text("waiting for the first command")
        assert page.locator("#commands .tile").count() == 0

        @quills.command(group="g", name="first", registry=registry)
        def first() -> int:
            return 1

        first()
        page.wait_for_selector("#commands .tile[data-name='first']")
        expect(page.locator("#empty")).to_be_hidden()
        expect(page.locator("#streams .stream-state")).to_have_text("live")
    assert page.console.errors == []  # type: ignore[attr-defined]


def test_page_says_too_many_clients_on_503_and_connects_when_a_slot_frees(
    page: Page, busy_registry: quills.Registry
) -> None:
    with serve(port=0, registry=busy_registry, max_connections=1) as server, httpx.Client() as client:
        held = client.send(client.build_request("GET", server.url), stream=True)  # takes the only slot
        try:
            assert held.status_code == 200
            page.goto(server.dashboard_url)
            page.wait_for_function(f"{EMPTY_TEXT} === 'Too many clients (503)'")
            expect(page.locator("#streams .stream")).to_have_attribute("data-state", "full")
        finally:
            held.close()
        page.wait_for_selector("#commands .tile[data-name='alpha']", timeout=12_000)
        expect(page.locator("#streams .stream-state")).to_have_text("live")


def test_page_says_connection_lost_and_reconnects_when_the_instance_is_back(
    page: Page, busy_registry: quills.Registry
) -> None:
    server = serve(port=0, registry=busy_registry)
    port = server.port
    try:
        page.goto(server.dashboard_url)
        page.wait_for_selector("#commands .tile[data-name='beta']")
    finally:
        server.close()
    page.wait_for_function(
        "document.querySelector('#streams .stream-state').textContent === 'connection lost, reconnecting'"
    )
    assert page.locator("#commands .tile").count() == 2  # the last numbers stay visible
    with serve(port=port, registry=busy_registry):
        page.wait_for_function(
            "document.querySelector('#streams .stream-state').textContent === 'live'", timeout=12_000
        )


def test_a_stream_gone_silent_counts_as_lost(page: Page) -> None:
    """A hung connection (open, but nothing more after its first document) is dropped and retried."""
    doc = json.loads(json.dumps(tick_documents(_registry_with_commands("hung"))[0]))

    async def hung_stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"data: " + json.dumps(doc).encode() + b"\n\n"
            await asyncio.sleep(3600)

        return StreamingResponse(body(), media_type="text/event-stream")

    dashboard = dashboard_asgi()
    app = Starlette(
        routes=[
            Route("/hystrix.stream", hung_stream),
            Route("/dashboard", dashboard),
            Route("/dashboard/{path:path}", dashboard),
        ]
    )
    with UvicornThread(app) as server:
        page.goto(f"{server.base}/dashboard/")
        page.wait_for_selector("#commands .tile[data-name='hung']")
        page.evaluate("window.quillsDashboard.StreamConnection.silenceMs = 1500")
        expect(page.locator("#streams .stream-state")).to_have_text(
            "connection lost, reconnecting", timeout=5_000
        )
        # the retry connects again and gets the document again
        expect(page.locator("#streams .stream-state")).to_have_text("live", timeout=5_000)


def test_empty_cluster_says_no_host_reports_and_unknown_cluster_says_not_found(
    page: Page, tmp_path: Path
) -> None:
    (tmp_path / "instances").write_text("")
    monitor = TurbineMonitor(FileDiscovery(tmp_path / "instances"), clusters=["shop"])
    with UvicornThread(monitor.app) as aggregator:
        page.goto(f"{aggregator.base}/dashboard/")  # cluster "shop", no instance in it
        expect(page.locator("#empty")).to_have_text(
            "Waiting for the first command: no host is reporting yet."
        )
        page.goto(f"{aggregator.base}/dashboard/?stream=../turbine.stream%3Fcluster%3Dnope")
        page.wait_for_function(f"{EMPTY_TEXT} === 'Stream not found (404)'")


@pytest.fixture
def two_clusters(tmp_path: Path) -> Iterator[str]:
    """An aggregator with clusters "shop" and "ops", each of one in-process instance; yields its base URL."""
    with (
        serve(port=0, registry=_registry_with_commands("alpha")) as shop,
        serve(port=0, registry=_registry_with_commands("omega")) as ops,
    ):
        instances = tmp_path / "instances"
        instances.write_text(f"127.0.0.1:{shop.port},shop,up\n127.0.0.1:{ops.port},ops,up\n")
        monitor = TurbineMonitor(FileDiscovery(instances))
        with UvicornThread(monitor.app) as aggregator:
            yield aggregator.base


def test_page_watches_every_cluster_and_streams_can_be_removed_and_added(
    page: Page, two_clusters: str
) -> None:
    page.goto(f"{two_clusters}/dashboard/")
    page.wait_for_selector("#commands .tile[data-name='alpha']")
    page.wait_for_selector("#commands .tile[data-name='omega']")
    streams = page.evaluate("new URL(location.href).searchParams.getAll('stream')")
    assert sorted(streams) == ["../turbine.stream?cluster=ops", "../turbine.stream?cluster=shop"]
    labels = page.eval_on_selector_all("#commands .stream-label", "els => els.map(e => e.textContent)")
    assert sorted(label.split(" @ ")[0] for label in labels) == ["ops", "shop"]
    ops_chip = page.locator("#streams .stream", has_text="ops @")
    ops_chip.locator(".remove").click()
    page.wait_for_function("!document.querySelector(\"#commands .tile[data-name='omega']\")")
    assert page.evaluate("new URL(location.href).searchParams.getAll('stream')") == [
        "../turbine.stream?cluster=shop"
    ]
    expect(page.locator("#commands .tile[data-name='alpha'] .stream-label")).to_be_hidden()  # one stream left
    page.fill("#stream-url", "../turbine.stream?cluster=ops")
    page.click("#add-stream button[type=submit]")
    page.wait_for_selector("#commands .tile[data-name='omega']")
    expect(page.locator("#commands .tile[data-name='alpha'] .stream-label")).to_have_text(
        re.compile("^shop @ ")
    )
    page.fill("#stream-url", "http://[not a url")
    page.click("#add-stream button[type=submit]")
    assert page.evaluate("document.querySelector('#stream-url').validity.valid") is False
    expect(page.locator("#streams .stream")).to_have_count(2)
    assert page.console.errors == []  # type: ignore[attr-defined]
