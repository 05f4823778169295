"""Delivery end to end, with real processes: NATS, the Postbacks service, receivers on loopback.

Every (event, rule) pair that should be sent arrives at least once, duplicates only with the same
``postback_id``, nothing else is sent: with healthy receivers, a SIGKILLed service and a receiver that
is down for a while. A hung partner does not slow the others.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from quills.attribution.config import ConfigStore, Partner, PostbackRule
from quills.attribution.db import Database
from quills.attribution.postbacks import PostbackEvent

from .conftest import expected, make_events, publish, setup_config, wait_for
from .procs import PostbacksProcess, ReceiverProcess


def ids(receiver: ReceiverProcess) -> list[str]:
    return [parse_qs(urlsplit(r["target"]).query)["id"][0] for r in receiver.received()]


def rule(rule_id: str, partner: str, receiver: ReceiverProcess, **fields: object) -> PostbackRule:
    values: dict[str, object] = {
        "rule_id": rule_id,
        "app_id": "app1",
        "partner_id": partner,
        "url_template": receiver.url + "/pb?id={postback_id}&gaid={advertising_id}&c={click_id}",
        "max_attempts": 20,
    }
    values.update(fields)
    return PostbackRule(**values)  # type: ignore[arg-type]


def mixed_events(n: int, seed: int) -> list[PostbackEvent]:
    rng = random.Random(seed)
    out: list[PostbackEvent] = []
    for _ in range(n):
        kind = rng.choice(["install", "in_app"])
        extra: dict[str, object] = {
            "media_source": rng.choice(["net_int", "other_int", "organic"]),
            "is_lat": rng.random() < 0.2,
            "country_code": rng.choice(["US", "IN"]),
        }
        if kind == "in_app":
            extra.update(event_type="in_app", event_name=rng.choice(["af_purchase", "level"]))
        out.extend(make_events(1, **extra))  # type: ignore[arg-type]
    return out


def test_matching_pairs_arrive_once_and_nothing_else(
    tmp_path: Path, nats_url: str, store: ConfigStore
) -> None:
    a, b = ReceiverProcess(tmp_path, "a"), ReceiverProcess(tmp_path, "b")
    setup_config(
        store,
        [Partner(partner_id="neta", media_sources=("net_int",)), Partner(partner_id="netb")],
        [
            rule("ra", "neta", a, event_types=("install",)),
            rule(
                "rb",
                "netb",
                b,
                event_types=("in_app",),
                event_names=("af_purchase",),
                scope="all_including_organic",
                privacy_mode="drop",
                filters={"countries_deny": ["IN"]},
            ),
        ],
    )
    events = mixed_events(300, seed=1)
    want = expected(store, events)
    service = PostbacksProcess(tmp_path, store.db.url, nats_url)
    try:
        publish(nats_url, events)
        wait_for(lambda: len(set(ids(a)) | set(ids(b))) >= len(want), 60, "deliveries", service.log)
        time.sleep(0.5)  # anything extra would arrive now
        got_a, got_b = ids(a), ids(b)
        assert set(got_a) | set(got_b) == set(want)
        assert {want[i] for i in got_a} <= {"neta"} and {want[i] for i in got_b} <= {"netb"}
        assert len(got_a) + len(got_b) == len(want)  # healthy receivers: exactly once
        # device ids were sent only for consenting events (privacy strip by default)
        sent = {r["target"] for r in a.received()}
        assert any("gaid=gaid-" in t for t in sent)
        assert all(r["host"] == f"127.0.0.1:{a.port}" for r in a.received())
    finally:
        service.stop()
        a.kill()
        b.kill()


def test_deliveries_work_the_same_on_postgresql(tmp_path: Path, nats_url: str, pg_dsn: str) -> None:
    store = ConfigStore(Database(pg_dsn))
    store.ensure_schema()
    test_matching_pairs_arrive_once_and_nothing_else(tmp_path, nats_url, store)
    (count,) = store.db.query("SELECT COUNT(*) FROM delivery_attempts WHERE outcome = 'sent'")[0]
    assert count > 0


def test_sigkill_and_receiver_outage_lose_nothing_and_send_nothing_extra(
    tmp_path: Path, nats_url: str, store: ConfigStore
) -> None:
    a, b = ReceiverProcess(tmp_path, "a"), ReceiverProcess(tmp_path, "b")
    setup_config(
        store,
        [Partner(partner_id="neta", media_sources=("net_int",)), Partner(partner_id="netb")],
        [
            rule("ra", "neta", a, event_types=("install", "in_app")),
            rule("rb", "netb", b, event_types=("install",), scope="all_non_organic"),
        ],
    )
    events = mixed_events(3000, seed=2)
    want = expected(store, events)
    service = PostbacksProcess(tmp_path, str(tmp_path / "quills.db"), nats_url)
    chunks = [events[i : i + 100] for i in range(0, len(events), 100)]

    def feed() -> None:
        for chunk in chunks:
            publish(nats_url, chunk)
            time.sleep(0.05)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        wait_for(lambda: len(ids(a)) > 100, 60, "first deliveries", service.log)
        service.kill()  # SIGKILL mid-load
        a.kill()  # and partner a goes down for a while
        time.sleep(0.5)
        service.start()
        time.sleep(3)  # retries against a dead receiver: connection refused, breaker opens, parked
        a.start()
        feeder.join(120)
        wait_for(lambda: set(ids(a)) | set(ids(b)) >= set(want), 120, "every delivery", service.log)
        time.sleep(1)
        got = ids(a) + ids(b)
        assert set(got) == set(want), "nothing missing and nothing that should not be sent"
        for pid, n in Counter(got).items():
            if n > 1:
                assert pid in want  # a duplicate is only a resend of the same postback_id
        assert {want[i] for i in ids(a)} == {"neta"} and {want[i] for i in ids(b)} == {"netb"}
    finally:
        feeder.join(5)
        service.stop()
        a.kill()
        b.kill()
