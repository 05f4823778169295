"""The traffic model: valid events, the reference's mix, reproducible with a seed."""

from __future__ import annotations

import random
import time
from collections import Counter

import msgspec

from quills.attribution.events import AnyEvent
from quills.attribution.traffic import TrafficModel, demo_apps

decode = msgspec.json.Decoder(list[AnyEvent]).decode


def sample(n: int, seed: int = 1) -> list[dict[str, object]]:
    model = TrafficModel(demo_apps(200), random.Random(seed))
    now = int(time.time() * 1000)
    return [model.event(model.app(), now) for _ in range(n)]


def test_every_generated_event_is_valid() -> None:
    assert len(decode(msgspec.json.encode(sample(3000)))) == 3000


def test_mix_follows_the_reference_model() -> None:
    events = sample(20_000)
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
