"""Builders of rules, partners and events for the postbacks tests."""

from __future__ import annotations

import uuid
from typing import Any

from quills.attribution.config import Partner, PostbackRule, RuleIndex
from quills.attribution.postbacks import PostbackEvent

NOW = 1_763_700_000_000


def rule(**fields: Any) -> PostbackRule:
    values: dict[str, Any] = {
        "rule_id": "r1",
        "app_id": "app1",
        "partner_id": "net",
        "url_template": "https://postbacks.example.com/p?click={click_id}&id={postback_id}",
    }
    values.update(fields)
    return PostbackRule(**values)


def partner(**fields: Any) -> Partner:
    values: dict[str, Any] = {"partner_id": "net", "media_sources": ("net_int",)}
    values.update(fields)
    return Partner(**values)


def event(**fields: Any) -> PostbackEvent:
    values: dict[str, Any] = {
        "event_type": "install",
        "event_id": str(uuid.uuid4()),
        "app_id": "app1",
        "platform": "android",
        "event_time": NOW,
        "install_time": NOW,
        "device_id": "dev-1",
        "advertising_id": "gaid-1",
        "att": None,
        "country_code": "US",
        "media_source": "net_int",
        "click_id": "c1",
    }
    values.update(fields)
    return PostbackEvent(**values)


def index(rules: list[PostbackRule], partners: list[Partner] | None = None) -> RuleIndex:
    return RuleIndex.of(partners or [partner()], rules)
