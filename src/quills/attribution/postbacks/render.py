"""Rendering a rule's templates for one event: macro values, privacy stripping, percent-encoding.

Every substituted value is percent-encoded per RFC 3986 (everything but ``A-Z a-z 0-9 - . _``; even
``~`` is encoded, as some partners' parsers expect), so a value can never add a parameter or change the
path; the template's own text is left as written. In a body, values are JSON-escaped instead. A macro with
no value renders empty, or drops its whole query parameter when the rule says ``missing: drop``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from urllib.parse import quote

from quills.attribution.config.index import CompiledRule
from quills.attribution.config.template import (
    PERSONAL_MACROS,
    REVENUE_MACROS,
    VALUE_MACROS,
    Part,
    Template,
)
from quills.attribution.postbacks.messages import PostbackEvent

__all__ = ("macro_values", "render_url", "render_body", "encode_value", "postback_id")


def postback_id(rule_id: str, event_id: str) -> str:
    """The idempotency key of (rule, event): 128 bits of BLAKE2b, hex; the same forever."""
    return hashlib.blake2b(f"{rule_id}\x1f{event_id}".encode(), digest_size=16).hexdigest()


def encode_value(value: str) -> str:
    """``value`` percent-encoded for any place in a URL."""
    return quote(value, safe="").replace("~", "%7E")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 5))
    return str(value)


def macro_values(
    event: PostbackEvent, compiled: CompiledRule, pid: str, *, strip: bool
) -> dict[str, str | None]:
    """Every macro's value for ``event`` under ``compiled`` (None: no value)."""
    rule = compiled.rule
    name = event.event_name
    revenue = event.event_revenue if rule.send_revenue == "values_and_revenue" else None
    values: dict[str, object] = {
        "click_id": event.click_id,
        "advertising_id": event.advertising_id,
        "idfa": event.idfa,
        "idfv": event.idfv,
        "device_id": event.device_id,
        "customer_user_id": event.customer_user_id,
        "app_id": event.app_id,
        "platform": event.platform,
        "event_type": event.event_type,
        "event_name": rule.partner_event_map.get(name, name) if name is not None else None,
        "event_value": event.event_value if rule.send_revenue != "none" else None,
        "revenue": revenue,
        "revenue_usd": event.event_revenue_usd if revenue is not None else None,
        "currency": event.event_revenue_currency if revenue is not None else None,
        "country_code": event.country_code,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "os_version": event.os_version,
        "device_model": event.device_model,
        "timestamp": event.event_time // 1000,
        "install_unix_ts": (event.install_time or event.event_time) // 1000,
        "media_source": event.media_source,
        "campaign": event.campaign,
        "campaign_id": event.af_c_id,
        "adset": event.af_adset,
        "ad": event.af_ad,
        "site_id": event.af_siteid,
        "is_retargeting": event.is_retargeting,
        "attributed_touch_type": event.attributed_touch_type,
        "postback_id": pid,
    }
    if strip:
        for macro in PERSONAL_MACROS:
            values[macro] = None
    if rule.send_revenue == "none":
        for macro in REVENUE_MACROS | VALUE_MACROS:
            values[macro] = None
    return {k: _text(v) for k, v in values.items()}


def _value(part: Part, values: dict[str, str | None], escape: Callable[[str], str]) -> str | None:
    value = values.get(part.macro)
    if value is None or value == "":
        return None
    if part.modifier == "sha1":
        return hashlib.sha1(value.encode()).hexdigest()
    if part.modifier == "md5":
        return hashlib.md5(value.encode()).hexdigest()
    if part.modifier == "raw":
        # raw is trusted to be URL-safe already, but it still may not break out of the URL
        return value if value.isprintable() and " " not in value else escape(value)
    return escape(value)


def _join(parts: tuple[Part, ...], values: dict[str, str | None], escape: Callable[[str], str]) -> str:
    out = []
    for part in parts:
        if part.macro:
            out.append(_value(part, values, escape) or "")
        else:
            out.append(part.text)
    return "".join(out)


def render_url(template: Template, values: dict[str, str | None], *, drop_missing: bool) -> str:
    """The URL for ``values``; with ``drop_missing`` a query parameter whose macros all lack a value is
    left out."""
    url = _join(template.head, values, encode_value)
    params = []
    for param in template.params:
        macros = [p for p in param if p.macro]
        if drop_missing and macros and all(not values.get(p.macro) for p in macros):
            continue
        params.append(_join(param, values, encode_value))
    return url + "&".join(params)


def _json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


def render_body(template: Template, values: dict[str, str | None]) -> str:
    """The body for ``values`` (values JSON-escaped, so a JSON template stays valid JSON)."""
    return _join(template.head, values, _json_escape)
