"""The traffic model: valid events, the reference's mix, reproducible with a seed."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import msgspec
import pytest

from quills.attribution.events import AnyEvent
from quills.attribution.traffic import EventPool, TrafficModel, demo_apps

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
    assert len(pool._pools[apps[0].app_id]) == 64 and len(pool._pools[apps[40].app_id]) == 16
    with pytest.raises(ValueError, match="max_per_app"):
        EventPool(model, max_per_app=8)
