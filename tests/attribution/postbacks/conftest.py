"""Fixtures of the postbacks tests: an embedded NATS server, a SQLite database with apps, partners and
rules, the Postbacks service as a real process, receivers on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quills.attribution.config import ConfigStore, Partner, PostbackRule, RuleIndex
from quills.attribution.db import Database
from quills.attribution.postbacks import POSTBACK_TOPICS, PostbackEvent, evaluate
from quills.streams import EmbeddedNats, connect

from ..helpers import free_port


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    with EmbeddedNats(tmp_path / "nats", port=free_port()) as server:
        yield server.url


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    s = ConfigStore(Database(str(tmp_path / "quills.db")))
    s.ensure_schema()
    return s


def setup_config(store: ConfigStore, partners: list[Partner], rules: list[PostbackRule]) -> None:
    for app_id in sorted({r.app_id for r in rules}):
        store.create_app(app_id, "android")
    for p in partners:
        store.put_partner(p)
    for r in rules:
        store.put_rule(r)


def publish(url: str, events: list[PostbackEvent]) -> None:
    async def run() -> None:
        backbone = await connect(url)
        try:
            for topic in POSTBACK_TOPICS:
                await backbone.ensure_topic(topic.wire_name)
            installs = [e for e in events if e.event_type != "in_app"]
            inapps = [e for e in events if e.event_type == "in_app"]
            if installs:
                await backbone.publish_many(POSTBACK_TOPICS[0], installs, key=lambda e: e.app_id)
            if inapps:
                await backbone.publish_many(POSTBACK_TOPICS[1], inapps, key=lambda e: e.app_id)
        finally:
            await backbone.close()

    asyncio.run(run())


def expected(store: ConfigStore, events: list[PostbackEvent]) -> dict[str, str]:
    """postback_id -> partner of every delivery the events must cause."""
    index = RuleIndex.of(store.partners(), store.rules())
    return {d.postback_id: d.partner_id for d in evaluate(index, events, int(time.time() * 1000))}


def make_events(n: int, app_id: str = "app1", **fields: Any) -> list[PostbackEvent]:
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        values: dict[str, Any] = {
            "event_type": "install",
            "event_id": str(uuid.uuid4()),
            "app_id": app_id,
            "platform": "android",
            "event_time": now,
            "install_time": now,
            "device_id": f"d{i}",
            "advertising_id": f"gaid-{i}",
            "att": None,
            "country_code": "US",
            "media_source": "net_int",
            "click_id": f"c{i}",
        }
        values.update(fields)
        out.append(PostbackEvent(**values))
    return out


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")
