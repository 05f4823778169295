"""The traffic model: valid events, the reference's mix, reproducible with a seed."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from typing import Any

import msgspec
import pytest

from quills.attribution.events import AnyEvent
from quills.attribution.ingest.handlers import parse_batch, parse_single
from quills.attribution.traffic import DemoApp, EventPool, TrafficModel, _uniform, demo_apps

decode = msgspec.json.Decoder(list[AnyEvent]).decode


def sample(n: int, seed: int = 1, *, pooled: bool = False) -> list[dict[str, Any]]:
    """``n`` events of the model, or of an ``EventPool`` over it (decoded back to dicts)."""
    model = TrafficModel(demo_apps(200), random.Random(seed))
    now = int(time.time() * 1000)
    if not pooled:
        return [model.event(model.app(), now) for _ in range(n)]
    pool = EventPool(model, max_per_app=256)
    return [msgspec.json.decode(b) for _ in range(n) for b in pool.events(model.app(), 1, now)]


@pytest.mark.parametrize("pooled", [False, True], ids=["model", "pool"])
def test_every_generated_event_is_valid(pooled: bool) -> None:
    assert len(decode(msgspec.json.encode(sample(3000, pooled=pooled)))) == 3000


@pytest.mark.parametrize("pooled", [False, True], ids=["model", "pool"])
def test_mix_follows_the_reference_model(pooled: bool) -> None:
    events = sample(20_000, pooled=pooled)
    types = Counter(e["event_type"] for e in events)
    assert 0.67 < types["session"] / 20_000 < 0.73 and 0.21 < types["in_app"] / 20_000 < 0.27
    organic = sum(e["media_source"] == "organic" for e in events) / 20_000
    assert 0.52 < organic < 0.58
    apps = Counter(e["app_id"] for e in events)
    top = apps.most_common(2)  # Zipf: the top 1 % of 200 apps carry a large share
    assert top[0][1] / 20_000 > 0.1
    assert Counter(e["country_code"] for e in events).most_common(1)[0][0] == "IN"
    revenue = [e for e in events if "event_revenue" in e]
    assert 0.004 < len(revenue) / 20_000 < 0.012


def test_a_seed_reproduces_the_traffic() -> None:
    a, b = sample(50, seed=3), sample(50, seed=3)
    assert [e["event_id"] for e in a] == [e["event_id"] for e in b]


def test_demo_apps_are_stable_and_span_both_stores() -> None:
    apps = demo_apps(100)
    assert apps == demo_apps(100) and {a.platform for a in apps} == {"android", "ios"}


def test_pooled_events_get_fresh_ids_times_and_devices_and_pools_stay_bounded() -> None:
    apps = demo_apps(50)
    model = TrafficModel(apps, random.Random(3), devices_per_app=1000)
    pool = EventPool(model, max_per_app=64)
    now = int(time.time() * 1000)
    events = decode(b"[" + b",".join(pool.events(apps[0], 1000, now)) + b"]")
    assert len({e.event_id for e in events}) == 1000
    assert all(now - 3 * 86_400_000 < e.event_time <= now for e in events)
    assert all(e.app_id == apps[0].app_id and e.device_id.startswith("00001-") for e in events)
    assert all(int(e.device_id.split("-")[1]) < 1000 for e in events)
    assert len({e.device_id for e in events}) > 500, "devices are drawn per event, not per pooled event"
    pool.events(apps[40], 1000, now)
    assert len(pool._pools[apps[0].app_id][0]) == 64 and len(pool._pools[apps[40].app_id][0]) == 16
    with pytest.raises(ValueError, match="max_per_app"):
        EventPool(model, max_per_app=8)


def test_a_body_is_the_events_joined_and_the_ingest_api_accepts_it() -> None:
    apps = demo_apps(30)
    now = int(time.time() * 1000)
    by_body, by_events = (EventPool(TrafficModel(apps, random.Random(9)), max_per_app=64) for _ in range(2))
    for app in [apps[0], apps[1], apps[29], apps[0]] * 3:  # filling, then drawing from a full pool
        for n in (1, 2, 100, 300):
            body = by_body.body(app, n, now)
            assert body == b"[" + b",".join(by_events.events(app, n, now)) + b"]"
            events = parse_batch(body, "application/json", 1000)
            assert isinstance(events, list) and len(events) == n
            assert {e.app_id for e in events} == {app.app_id}
    single = by_body.events(apps[3], 1, now)[0]
    assert isinstance(parse_single(single, "application/json"), list)


def test_pooled_ids_are_unique_uuids_and_times_follow_now_across_bodies() -> None:
    apps = demo_apps(20)
    pool = EventPool(TrafficModel(apps, random.Random(4)), max_per_app=32)
    now = int(time.time() * 1000)
    seen: set[str] = set()
    for k in range(60):
        at = now + k * 1000
        for e in decode(pool.body(apps[k % 3], 50, at)):
            assert uuid.UUID(e.event_id).version == 4 and e.event_id not in seen
            seen.add(e.event_id)
            assert at - 31 * 86_400_000 <= e.event_time <= at
    assert len(seen) == 3000
    # The busiest app's 32 pooled events each keep their lateness: times move with now, by those 32.
    late = {
        now + k * 1000 - e.event_time
        for k in range(60, 90)
        for e in decode(pool.body(apps[0], 50, now + k * 1000))
    }
    assert 16 < len(late) <= 32


def test_a_percent_sign_in_a_pooled_event_is_sent_as_is() -> None:
    class Percent(TrafficModel):
        def event(self, app: DemoApp, now_ms: int) -> dict[str, Any]:
            e = super().event(app, now_ms)
            e["customer_user_id"] = "user-%d%s%%"
            return e

    apps = demo_apps(5)
    pool = EventPool(Percent(apps, random.Random(2)))
    events = decode(pool.body(apps[0], 40, int(time.time() * 1000)))
    assert {e.customer_user_id for e in events} == {"user-%d%s%%"}


def test_devices_beyond_the_rendered_table_are_drawn_all_the_same() -> None:
    apps = demo_apps(3)
    model = TrafficModel(apps, random.Random(5), devices_per_app=50_000_000)
    pool = EventPool(model)
    events = decode(pool.body(apps[0], 1000, int(time.time() * 1000)))
    numbers = [int(e.device_id.split("-")[1]) for e in events]
    assert all(len(e.device_id) == 15 for e in events) and max(numbers) < 50_000_000
    assert max(numbers) > 25_000_000 and len(set(numbers)) > 990
    assert pool._device_ids == [], "no table of 50 million devices"


@pytest.mark.parametrize("bound", [1, 7, 1000, 1 << 20, (1 << 20) + 1, 10**12])
def test_uniform_draws_cover_their_range(bound: int) -> None:
    draws = _uniform(random.Random(bound), 20_000, bound)
    assert len(draws) == 20_000 and min(draws) >= 0 and max(draws) < bound
    if bound > 1:
        assert 0.48 < sum(draws) / 20_000 / (bound - 1) < 0.52
    if bound == 7:
        assert set(Counter(draws)) == set(range(7)) and min(Counter(draws).values()) > 2500
