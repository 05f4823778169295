"""The configuration contract: partners, postback rules, and the changes published on ``config.v1``.

The rule model follows ``shared/reference/attribution-domain.md`` section 2. Every struct is frozen; the
store keeps each as JSON, and a change travels as a ``ConfigChange`` carrying the whole new value, so a
follower never needs to read the database to apply it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from quills.streams import Topic

__all__ = (
    "Partner",
    "Filters",
    "PostbackRule",
    "AppInfo",
    "ConfigChange",
    "CONFIG",
    "EVENT_TYPES",
    "Scope",
    "SendRevenue",
    "PrivacyMode",
)

Id = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
EVENT_TYPES = ("install", "reinstall", "reattribution", "uninstall", "in_app", "session")
EventType = Literal["install", "reinstall", "reattribution", "uninstall", "in_app", "session"]
Scope = Literal["attributed_to_partner", "all_non_organic", "all_including_organic"]
SendRevenue = Literal["none", "values_only", "values_and_revenue"]
PrivacyMode = Literal["strip", "drop"]


class Partner(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An ad network or analytics partner.

    ``media_sources`` are the ``media_source`` values attributed to it (default: its id); a rule with scope
    ``attributed_to_partner`` fires only for those. ``max_concurrent`` (1..1000, default 20) is the size of
    its delivery lane (bulkhead); ``timeout_s`` (0.05..60, default 5) bounds one request of its command.
    ``restricted`` partners always get the privacy treatment of their rules.
    """

    partner_id: Id
    name: Annotated[str, Meta(max_length=200)] = ""
    enabled: bool = True
    media_sources: tuple[Annotated[str, Meta(min_length=1, max_length=100)], ...] = ()
    max_concurrent: Annotated[int, Meta(ge=1, le=1000)] = 20
    timeout_s: Annotated[float, Meta(ge=0.05, le=60)] = 5.0
    restricted: bool = False
    version: int = 0

    @property
    def sources(self) -> tuple[str, ...]:
        return self.media_sources or (self.partner_id,)


class Filters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which events a rule keeps: country allow/deny lists (ISO alpha-2; empty allow = all), platform,
    a campaign regular expression (``re.search``), retargeting or not (None = both)."""

    countries_allow: tuple[Annotated[str, Meta(pattern=r"^[A-Z]{2}$")], ...] = ()
    countries_deny: tuple[Annotated[str, Meta(pattern=r"^[A-Z]{2}$")], ...] = ()
    platform: Literal["android", "ios"] | None = None
    campaign_regex: Annotated[str, Meta(max_length=500)] | None = None
    is_retargeting: bool | None = None


class PostbackRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One postback of one app to one partner.

    Evaluation order: enabled (rule and partner) -> event type and name -> scope -> window -> filters ->
    privacy -> render -> idempotency key -> enqueue.

    Attributes:
        event_types: which event types fire it (default install).
        event_names: in-app event names (case-sensitive) or ``("*",)`` for all (default).
        scope: ``attributed_to_partner`` (default), ``all_non_organic`` or ``all_including_organic``.
        partner_event_map: our event name -> the partner's (``{event_name}`` renders the mapped name).
        send_revenue: ``none`` (default: revenue and value macros render empty), ``values_only``,
            ``values_and_revenue``.
        window_days: in-app events later than this many days after install are not posted (1..3650);
            None (default) is lifetime.
        privacy_mode: for restricted events (``is_lat``, iOS without ATT ``authorized``, or a restricted
            partner): ``strip`` (default) renders device ids, IP, UA and customer id empty; ``drop`` sends
            nothing.
        missing: a macro without a value renders ``empty`` (default) or ``drop``s its query parameter.
        url_template: ``http(s)://host/...`` with ``{macro}`` placeholders (never in scheme or host).
        body_template / headers: optional, for POST (macros in the body are JSON-escaped).
        delay_s: seconds to wait before the first attempt, 0..600 (default 0).
        timeout_s: seconds per attempt, 0.05..60 (default 5).
        max_attempts: 1..20 (default 5). max_age_s: give up this long after the event was seen,
            1..7 days (default 24 h).
    """

    rule_id: Id
    app_id: Annotated[str, Meta(min_length=1, max_length=100)]
    partner_id: Id
    enabled: bool = True
    event_types: tuple[EventType, ...] = ("install",)
    event_names: tuple[Annotated[str, Meta(min_length=1, max_length=100)], ...] = ("*",)
    scope: Scope = "attributed_to_partner"
    partner_event_map: dict[str, Annotated[str, Meta(max_length=100)]] = {}
    send_revenue: SendRevenue = "none"
    window_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    filters: Filters = Filters()
    privacy_mode: PrivacyMode = "strip"
    missing: Literal["empty", "drop"] = "empty"
    method: Literal["GET", "POST"] = "GET"
    url_template: Annotated[str, Meta(min_length=8, max_length=4000)]
    body_template: Annotated[str, Meta(max_length=8000)] | None = None
    headers: dict[Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,100}$")], str] = {}
    delay_s: Annotated[float, Meta(ge=0, le=600)] = 0.0
    timeout_s: Annotated[float, Meta(ge=0.05, le=60)] = 5.0
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 5
    max_age_s: Annotated[float, Meta(ge=1, le=7 * 86_400)] = 86_400.0
    version: int = 0


class AppInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An app as the config API shows it (its ingest key is never shown again after creation)."""

    app_id: str
    platform: str
    created_at: int = 0


class ConfigChange(msgspec.Struct, frozen=True, kw_only=True):
    """One stored change: ``kind`` and ``op`` say what; the new value rides along (None for a delete)."""

    change_id: str
    at_ms: int
    kind: Literal["app", "partner", "rule"]
    op: Literal["upsert", "delete"]
    key: str
    app: AppInfo | None = None
    partner: Partner | None = None
    rule: PostbackRule | None = None


CONFIG: Topic[ConfigChange] = Topic("config.v1", ConfigChange)
"""Every stored configuration change, in order (keyed by the app id, or the partner id)."""
