"""The config API on the API process under ``quills up``: admin key, validation at save (unknown macros,
non-http(s) and unsafe targets refused), live rule changes through ``config.v1``, the delivery log and the
overview."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import Platform, event
from ..postbacks.procs import ReceiverProcess


@pytest.fixture
def api_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("QUILLS_POSTBACK_ALLOW", "127.0.0.0/8")
    monkeypatch.setenv("QUILLS_POSTBACK_RETRY_BASE", "0.2")
    p = Platform(tmp_path / "data", demo_apps=2)
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            p.stop()


def send_until_accepted(p: Platform, key: str, body: dict[str, Any]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ingest learns new keys at its next reload (5 s)
        r = httpx.post(f"{p.ingest}/v1/events", json=body, headers={"authorization": f"Bearer {key}"})
        if r.status_code == 202:
            return
        time.sleep(0.5)
    raise AssertionError(f"ingest never accepted the new app's key: {r.status_code} {r.text}")


def wait_received(receiver: ReceiverProcess, n: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = receiver.received()
        if len(got) >= n:
            return got
        time.sleep(0.1)
    raise AssertionError(f"receiver got {len(receiver.received())} postbacks, expected {n}")


def test_config_api_drives_live_postbacks(api_platform: Platform, tmp_path: Path) -> None:
    p = api_platform
    receiver = ReceiverProcess(tmp_path, "partner")
    try:
        with httpx.Client(base_url=p.api, headers=p.admin, timeout=30) as api:
            assert httpx.get(f"{p.api}/v1/partners").status_code == 401
            app_key = next(iter(p.creds["apps"].values()))["key"]
            assert (
                httpx.get(f"{p.api}/v1/partners", headers={"authorization": f"Bearer {app_key}"}).status_code
                == 403
            )

            created = api.post("/v1/apps", json={"app_id": "com.new.app", "platform": "android"})
            assert created.status_code == 201, created.text
            key = created.json()["ingest_key"]
            assert key.startswith("qi_")
            assert api.get("/v1/apps/com.new.app").json()["app"]["platform"] == "android"

            assert api.put("/v1/partners/neta", json={"media_sources": ["neta_int"]}).status_code == 200
            rule: dict[str, Any] = {
                "app_id": "com.new.app",
                "partner_id": "neta",
                "event_types": ["install"],
                "url_template": receiver.url + "/pb?id={postback_id}&click={click_id}",
            }
            for bad_url, reason in (
                (receiver.url + "/pb?x={clickid}", "unknown macro"),
                ("ftp://127.0.0.1/pb", "http"),
                ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
                ("http://10.0.0.1/pb", "10.0.0.1"),
                ("http://{ip}/pb", "host"),
            ):
                r = api.put("/v1/rules/r1", json={**rule, "url_template": bad_url})
                assert r.status_code == 422, bad_url
                assert reason in r.json()["detail"], r.json()
            r = api.put("/v1/rules/r1", json=rule)
            assert r.status_code == 200, r.text
            assert r.json()["published"] is True

            install = event("com.new.app", event_type="install", media_source="neta_int", click_id="ck-1")
            send_until_accepted(p, key, install)
            (got,) = wait_received(receiver, 1)
            assert "click=ck-1" in got["target"]

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                log = api.get("/v1/postbacks", params={"app_id": "com.new.app", "status": "sent"}).json()
                if log["deliveries"]:
                    break
                time.sleep(0.2)
            (delivery,) = log["deliveries"]
            assert delivery["event_id"] == install["event_id"]
            assert delivery["attempt_log"][0]["status_code"] == 200
            stats = api.get("/v1/postbacks/stats", params={"app_id": "com.new.app"}).json()
            assert stats["partners"]["neta"]["deliveries"]["sent"] == 1

            overview = api.get("/v1/apps/com.new.app/overview").json()
            assert overview["stale"] is False
            assert overview["config"]["value"]["rules"][0]["rule_id"] == "r1"
            assert overview["postbacks"]["value"]["neta"]["deliveries"]["sent"] == 1

            # a live change: the rule is disabled, the next install is not posted
            assert api.put("/v1/rules/r1", json={**rule, "enabled": False}).status_code == 200
            time.sleep(1.0)
            second = event("com.new.app", event_type="install", media_source="neta_int", click_id="ck-2")
            send_until_accepted(p, key, second)
            time.sleep(2.0)
            assert len(receiver.received()) == 1
            changes = api.get("/v1/config/changes").json()
            assert [c["kind"] for c in changes][-4:] == ["app", "partner", "rule", "rule"]
    finally:
        receiver.kill()
