"""The Reports service and its API as real processes (under ``quills up``), on SQLite and PostgreSQL:
what the rows hold, grouping, time zones, CSV, the admin key, and poison messages on the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quills.streams import connect

from .helpers import Platform, event

HOUR = 3_600_000


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    db = request.getfixturevalue("pg_dsn") if request.param == "postgres" else ""
    p = Platform(tmp_path / "data", db=db)
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            p.stop()


def send(platform: Platform, events: list[dict[str, Any]]) -> None:
    app = events[0]["app_id"]
    response = httpx.post(
        f"{platform.ingest}/v1/events/batch", json=events, headers=platform.app_key(app), timeout=30
    )
    assert response.status_code == 202, response.text


def test_reports_group_fold_and_shift_time_zones(any_db_platform: Platform) -> None:
    platform = any_db_platform
    (a, a_info), (b, b_info) = list(platform.creds["apps"].items())[:2]
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    late_evening = int(today.timestamp() * 1000) - HOUR // 2  # 23:30 UTC yesterday
    pa, pb = a_info["platform"], b_info["platform"]
    send(
        platform,
        [
            event(a, pa, event_type="install", media_source="applovin_int", campaign="c1", device_id="d1"),
            event(a, pa, event_type="install", media_source="applovin_int", campaign="c1", device_id="d2"),
            event(a, pa, event_type="session", media_source="applovin_int", campaign="c1", device_id="d1"),
            event(
                a, pa, event_type="in_app", event_revenue=9.99, event_revenue_currency="USD", device_id="d1"
            ),
            event(
                a, pa, event_type="in_app", event_revenue=-1.0, event_revenue_currency="EUR", device_id="d3"
            ),
            event(a, pa, event_type="session", event_time=late_evening, country_code="SG", device_id="d9"),
        ],
    )
    send(platform, [event(b, pb, event_type="install", country_code="BR", device_id="x1")])
    data = platform.wait_complete(int(time.time() * 1000))
    assert data["rows"][0] == {
        "installs": 3,
        "in_app_events": 2,
        "sessions": 2,
        "events": 7,
        "revenue_usd": 8.91,
        "devices": 5,
    }
    rows = platform.report(app_id=a, group_by="media_source,campaign", **{"from": today.date().isoformat()})[
        "rows"
    ]
    assert [(r["media_source"], r["campaign"], r["installs"], r["sessions"], r["devices"]) for r in rows] == [
        ("applovin_int", "c1", 2, 1, 2),
        ("organic", "", 0, 0, 2),
    ]
    yesterday = (today - dt.timedelta(days=1)).date().isoformat()
    by_day_utc = {r["date"]: r["events"] for r in platform.report(app_id=a, group_by="date")["rows"]}
    assert by_day_utc == {yesterday: 1, today.date().isoformat(): 5}
    by_day_sg = platform.report(app_id=a, group_by="date,country", timezone="+08:00")["rows"]
    assert {(r["date"], r["country"]) for r in by_day_sg} >= {(today.date().isoformat(), "SG")}
    hours = platform.report(app_id=a, group_by="hour", timezone="+08:00")["rows"]
    assert hours[0]["hour"].endswith("+08:00") and hours[0]["hour"][11:13] == "07"  # 23:00 UTC is 07:00 +08
    csv = httpx.get(
        f"{platform.api}/v1/reports",
        params={"group_by": "app_id", "format": "csv"},
        headers=platform.admin,
        timeout=30,
    )
    assert csv.headers["content-type"].startswith("text/csv") and csv.headers["x-data-complete-until"]
    lines = csv.text.strip().splitlines()
    assert lines[0] == "app_id,installs,in_app_events,sessions,events,revenue_usd,devices"
    assert sorted(lines[1:]) == sorted([f"{a},2,2,1,5,8.91,3", f"{b},1,0,0,1,0.0,1"])  # today only


def test_the_report_api_wants_the_admin_key_and_valid_parameters(platform: Platform) -> None:
    url = f"{platform.api}/v1/reports"
    assert httpx.get(url).status_code == 401
    app = next(iter(platform.creds["apps"]))
    assert httpx.get(url, headers=platform.app_key(app)).status_code == 403
    bad = httpx.get(url, params={"group_by": "planet", "timezone": "Mars/Base"}, headers=platform.admin)
    assert bad.status_code == 422
    assert {e["parameter"] for e in bad.json()["errors"]} == {"group_by", "timezone"}
    health = httpx.get(f"{platform.api}/healthz").json()
    assert health["status"] == "ok" and len(health["consumers"]) == 3
    assert "quills_stream_messages_total" in httpx.get(f"{platform.api}/metrics").text


def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_rest_is_counted(platform: Platform) -> None:
    async def publish_poison() -> None:
        async with await connect(f"nats://127.0.0.1:{platform.broker_port}") as backbone:
            await backbone.publish_raw("installs.v1", [b'{"event_type": "install", "app_id": 7}', b"\xff"])

    asyncio.run(publish_poison())
    app, info = next(iter(platform.creds["apps"].items()))
    send(platform, [event(app, info["platform"], event_type="install")])
    assert platform.wait_complete(int(time.time() * 1000))["rows"][0]["installs"] == 1
    health = httpx.get(f"{platform.api}/healthz").json()
    installs = next(c for c in health["consumers"] if c["topic"] == "installs.v1")
    assert installs["dlq_messages"] == 2 and installs["healthy"]


def test_on_kafka_data_complete_until_follows_the_partitions_end_offsets(
    kafka_url: str, tmp_path: Path
) -> None:
    platform = Platform(tmp_path / "data", broker=kafka_url, demo_apps=3)
    try:
        (a, a_info), (b, b_info) = list(platform.creds["apps"].items())[:2]
        send(platform, [event(a, a_info["platform"], event_type="install") for _ in range(30)])
        send(platform, [event(b, b_info["platform"]) for _ in range(20)])
        # complete past the moment both got their 202 (a probe taken earlier, even after the first
        # request went out, may predate the events and be covered at once)
        report = platform.wait_complete(int(time.time() * 1000))
        assert report["rows"][0]["installs"] == 30 and report["rows"][0]["sessions"] == 20
        health = httpx.get(f"{platform.api}/healthz").json()
        assert health["lag_seconds"] is not None and health["status"] == "ok"
    finally:
        platform.stop()
