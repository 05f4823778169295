"""Rule evaluation (the matrix, against a plain oracle), answer classification and retry backoff."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from quills.attribution.config import Filters
from quills.attribution.postbacks import backoff_delay, classify, evaluate, retry_after_seconds

from .factories import NOW, event, index, partner, rule

DAY = 86_400_000

rules_st = st.fixed_dictionaries(
    {
        "enabled": st.booleans(),
        "event_types": st.lists(st.sampled_from(["install", "in_app", "reinstall"]), min_size=1, unique=True),
        "event_names": st.sampled_from([("*",), ("af_purchase",), ("af_purchase", "level")]),
        "scope": st.sampled_from(["attributed_to_partner", "all_non_organic", "all_including_organic"]),
        "window_days": st.sampled_from([None, 1, 7]),
        "privacy_mode": st.sampled_from(["strip", "drop"]),
        "allow": st.sampled_from([(), ("US",), ("US", "IN")]),
        "deny": st.sampled_from([(), ("IN",)]),
        "platform": st.sampled_from([None, "android", "ios"]),
        "campaign_regex": st.sampled_from([None, "^brand", "summer"]),
        "is_retargeting": st.sampled_from([None, True, False]),
    }
)
events_st = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["install", "in_app", "reinstall", "session"]),
        "event_name": st.sampled_from([None, "af_purchase", "level", "other"]),
        "media_source": st.sampled_from(["organic", "net_int", "other_int"]),
        "age_days": st.sampled_from([0, 2, 30]),
        "country_code": st.sampled_from(["US", "IN", "DE"]),
        "platform": st.sampled_from(["android", "ios"]),
        "campaign": st.sampled_from([None, "brand_x", "summer_sale", "winter"]),
        "is_retargeting": st.booleans(),
        "att": st.sampled_from([None, "authorized", "denied"]),
        "is_lat": st.sampled_from([None, False, True]),
    }
)


def oracle(r: dict[str, Any], e: dict[str, Any], restricted_partner: bool) -> bool:
    """Whether the rule sends a postback for the event, written out plainly from the reference."""
    if not r["enabled"] or e["event_type"] not in r["event_types"]:
        return False
    if e["event_type"] == "in_app" and r["event_names"] != ("*",) and e["event_name"] not in r["event_names"]:
        return False
    organic = e["media_source"] == "organic"
    if r["scope"] == "attributed_to_partner" and (organic or e["media_source"] != "net_int"):
        return False
    if r["scope"] == "all_non_organic" and organic:
        return False
    if r["window_days"] is not None and e["event_type"] == "in_app" and e["age_days"] > r["window_days"]:
        return False
    if r["allow"] and e["country_code"] not in r["allow"]:
        return False
    if e["country_code"] in r["deny"]:
        return False
    if r["platform"] is not None and e["platform"] != r["platform"]:
        return False
    if r["is_retargeting"] is not None and e["is_retargeting"] != r["is_retargeting"]:
        return False
    if r["campaign_regex"] == "^brand" and not (e["campaign"] or "").startswith("brand"):
        return False
    if r["campaign_regex"] == "summer" and "summer" not in (e["campaign"] or ""):
        return False
    restricted = (
        restricted_partner
        or e["is_lat"] is True
        or (e["att"] is not None and e["att"] != "authorized")
        or (e["att"] is None and e["platform"] == "ios")
    )
    return not (restricted and r["privacy_mode"] == "drop")


def build(r: dict[str, Any], i: int) -> Any:
    return rule(
        rule_id=f"r{i}",
        enabled=r["enabled"],
        event_types=tuple(r["event_types"]),
        event_names=r["event_names"],
        scope=r["scope"],
        window_days=r["window_days"],
        privacy_mode=r["privacy_mode"],
        filters=Filters(
            countries_allow=r["allow"],
            countries_deny=r["deny"],
            platform=r["platform"],
            campaign_regex=r["campaign_regex"],
            is_retargeting=r["is_retargeting"],
        ),
        url_template="https://a.example/p?d={device_id}&id={postback_id}",
    )


def to_event(e: dict[str, Any], i: int) -> Any:
    name = e["event_name"] if e["event_type"] == "in_app" else None
    return event(
        event_id=f"e{i}",
        event_type=e["event_type"],
        event_name=name or ("x" if e["event_type"] == "in_app" else None),
        media_source=e["media_source"],
        is_organic=e["media_source"] == "organic",
        install_time=NOW - e["age_days"] * DAY,
        country_code=e["country_code"],
        platform=e["platform"],
        campaign=e["campaign"],
        is_retargeting=e["is_retargeting"],
        att=e["att"],
        is_lat=e["is_lat"],
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(rules_st, min_size=1, max_size=4), st.lists(events_st, min_size=1, max_size=8), st.booleans())
def test_evaluation_matches_the_reference_order_of_checks(
    rules: list[dict[str, Any]], events: list[dict[str, Any]], restricted_partner: bool
) -> None:
    for e in events:  # an in-app event without a listed name is named "x" by to_event
        if e["event_type"] == "in_app" and e["event_name"] is None:
            e["event_name"] = "x"
    idx = index([build(r, i) for i, r in enumerate(rules)], [partner(restricted=restricted_partner)])
    got = {
        (d.rule_id, d.event_id) for d in evaluate(idx, [to_event(e, i) for i, e in enumerate(events)], NOW)
    }
    want = {
        (f"r{ri}", f"e{ei}")
        for ri, r in enumerate(rules)
        for ei, e in enumerate(events)
        if oracle(r, e, restricted_partner)
    }
    assert got == want


def test_only_the_events_app_rules_are_evaluated() -> None:
    idx = index([rule(rule_id="a", app_id="app1"), rule(rule_id="b", app_id="app2")])
    assert [d.rule_id for d in evaluate(idx, [event(app_id="app2")], NOW)] == ["b"]
    assert evaluate(idx, [event(app_id="app3")], NOW) == []


def test_disabled_partner_silences_its_rules() -> None:
    idx = index([rule()], [partner(enabled=False)])
    assert evaluate(idx, [event()], NOW) == []


def test_delay_and_max_age_set_the_schedule() -> None:
    (d,) = evaluate(index([rule(delay_s=30, max_age_s=3600)]), [event()], NOW)
    assert d.due_ms == NOW + 30_000
    assert d.expires_ms == NOW + 3_600_000


def test_answers_are_classified_per_the_retry_policy() -> None:
    assert classify(200).status == classify(204).status == "sent"
    assert classify(None).status == "retry"  # connection error or timeout
    assert classify(500).status == classify(503).status == "retry"
    assert classify(429, "7").status == "retry"
    assert classify(429, "7").retry_after == 7.0
    for code in (301, 302, 400, 401, 403, 404, 410, 422):
        assert classify(code).status == "failed", code


def test_retry_after_accepts_seconds_only() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(None) is None


@given(st.integers(1, 12), st.floats(0.01, 60), st.integers(0, 2**32))
def test_backoff_grows_is_capped_and_jittered_within_half(attempt: int, base: float, seed: int) -> None:
    cap = base * 100
    delay = backoff_delay(attempt, base, cap, random.Random(seed))
    full = min(cap, base * 4 ** (attempt - 1))
    assert full / 2 <= delay <= full
