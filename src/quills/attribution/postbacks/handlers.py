"""Pure decisions of the Postbacks service: which (event, rule) pairs to send, and what an answer means.

Reads: batches of ``PostbackEvent`` and the current ``RuleIndex``. Writes: ``Delivery`` values; retry
decisions.

Evaluation order per rule (reference, section 2): active -> type/name -> scope -> window -> filters ->
privacy -> render -> idempotency key. Only the rules of the event's app are looked at (one dict lookup).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from quills.attribution.config.index import CompiledRule, RuleIndex
from quills.attribution.postbacks.messages import Delivery, PostbackEvent
from quills.attribution.postbacks.render import (
    macro_values,
    postback_id,
    render_body,
    render_event_url,
    render_url,
)

__all__ = (
    "matches",
    "is_restricted",
    "evaluate",
    "Outcome",
    "classify",
    "backoff_delay",
    "retry_after_seconds",
)

_DAY_MS = 86_400_000


def _private(event: PostbackEvent) -> bool:
    # the event's own part of is_restricted (the same for every rule)
    if event.is_lat:
        return True
    if event.att is not None:
        return event.att != "authorized"
    return event.platform == "ios"


def _organic(event: PostbackEvent) -> bool:
    return event.is_organic or event.media_source == "organic"


def is_restricted(event: PostbackEvent, compiled: CompiledRule) -> bool:
    """Whether privacy applies: limit-ad-tracking, iOS without ATT ``authorized``, or a restricted partner."""
    return compiled.partner.restricted or _private(event)


def matches(event: PostbackEvent, compiled: CompiledRule) -> bool:
    """Whether ``compiled`` fires for ``event`` (before privacy)."""
    return event.event_type in compiled.event_types and _fires(event, compiled, _organic(event))


def _fires(event: PostbackEvent, compiled: CompiledRule, organic: bool) -> bool:
    # matches() once the event type is known to be one of the rule's (evaluate looks rules up by type)
    if event.event_type == "in_app":
        names = compiled.event_names
        if names is not None and event.event_name not in names:
            return False
    scope = compiled.rule.scope
    if scope == "attributed_to_partner":
        if organic or event.media_source not in compiled.sources:
            return False
    elif scope == "all_non_organic" and organic:
        return False
    window = compiled.rule.window_days
    if window is not None and event.event_type == "in_app" and event.install_time is not None:
        if event.event_time - event.install_time > window * _DAY_MS:
            return False
    filters = compiled.rule.filters
    if compiled.countries_allow and event.country_code not in compiled.countries_allow:
        return False
    if event.country_code in compiled.countries_deny:
        return False
    if filters.platform is not None and event.platform != filters.platform:
        return False
    if filters.is_retargeting is not None and event.is_retargeting != filters.is_retargeting:
        return False
    return not (compiled.campaign is not None and not compiled.campaign.search(event.campaign or ""))


def evaluate(index: RuleIndex, events: Iterable[PostbackEvent], now_ms: int) -> list[Delivery]:
    """The deliveries ``events`` cause under ``index`` (pure: the same input gives the same output)."""
    out: list[Delivery] = []
    by_type = index.by_type
    for event in events:
        rules = by_type.get((event.app_id, event.event_type))
        if not rules:
            continue
        # what is the same for every rule of the event, once (rules were looked up by its type)
        organic, private = _organic(event), _private(event)
        for compiled in rules:
            if not _fires(event, compiled, organic):
                continue
            rule = compiled.rule
            restricted = private or compiled.partner.restricted
            if restricted and rule.privacy_mode == "drop":
                continue
            pid = postback_id(rule.rule_id, event.event_id)
            if compiled.body is None and rule.missing != "drop":
                url, body = render_event_url(event, compiled, pid, strip=restricted), None
            else:
                values = macro_values(event, compiled, pid, strip=restricted)
                url = render_url(compiled.url, values, drop_missing=rule.missing == "drop")
                body = render_body(compiled.body, values) if compiled.body is not None else None
            out.append(
                Delivery(
                    postback_id=pid,
                    rule_id=rule.rule_id,
                    partner_id=rule.partner_id,
                    app_id=event.app_id,
                    event_id=event.event_id,
                    method=rule.method,
                    url=url,
                    body=body,
                    headers=compiled.headers,
                    timeout_s=compiled.timeout_s,
                    max_attempts=rule.max_attempts,
                    created_ms=now_ms,
                    due_ms=now_ms + compiled.delay_ms,
                    expires_ms=now_ms + compiled.max_age_ms,
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt's answer means: ``sent``, ``retry`` (with an optional server-given delay) or
    ``failed`` (never retried)."""

    status: str
    retry_after: float | None = None


def retry_after_seconds(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds only; an HTTP date is ignored), 0..86400."""
    if not header:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return min(max(value, 0.0), 86_400.0)


def classify(status_code: int | None, retry_after: str | None = None) -> Outcome:
    """2xx: sent. None (connection error, timeout), 5xx, 429: retry (429/503 honour ``Retry-After``).
    Anything else (3xx: redirects are never followed; other 4xx): failed."""
    if status_code is None:
        return Outcome("retry")
    if 200 <= status_code < 300:
        return Outcome("sent")
    if status_code == 429 or status_code >= 500:
        return Outcome("retry", retry_after_seconds(retry_after))
    return Outcome("failed")


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1 = after the first failure): ``base * 4**(attempt-1)``,
    capped at ``cap``, with "equal jitter" (uniform in [d/2, d]) so retries of many deliveries spread out.
    With base 30 s: about 30 s, 2 min, 8 min, 30 min."""
    delay = min(cap, base * 4 ** max(0, attempt - 1))
    r: float = (rng or random).random()
    return float(delay / 2 + r * delay / 2)
