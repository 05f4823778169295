"""The event contract: install, in-app and session events, and the topics that carry them.

Field names follow the AppsFlyer raw-data names where one exists (``shared/reference/attribution-domain.md``
section 1). Every event is a msgspec ``Struct`` tagged by ``event_type``, so one decoder validates any mix of
events in C. Fields holding personal data (GDPR) carry ``x-personal-data: true`` in their JSON schema and are
listed in ``PERSONAL_DATA_FIELDS``; quasi-identifiers are in ``QUASI_IDENTIFIER_FIELDS``.

Schema evolution (msgspec's rules): a new field gets a default and a field's type never changes; anything
else is a new topic version (``installs.v2``). Unknown fields are ignored, so a newer SDK can send fields
this version does not know yet (they are not kept).

Topics, keyed by ``app_id``: ``installs.v1`` (install, reinstall, reattribution, uninstall), ``inapps.v1``
(in_app) and ``sessions.v1`` (session).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from quills.streams import Topic

__all__ = (
    "Event",
    "Install",
    "Reinstall",
    "Reattribution",
    "Uninstall",
    "InApp",
    "Session",
    "AnyEvent",
    "INSTALL_TYPES",
    "PERSONAL_DATA_FIELDS",
    "QUASI_IDENTIFIER_FIELDS",
    "TOPIC_OF_TYPE",
    "INSTALLS",
    "INAPPS",
    "SESSIONS",
    "EventView",
)

_PII = {"x-personal-data": True}
_QI = {"x-quasi-identifier": True}
_SERVER = {"x-set-by-server": True}

# Epoch milliseconds between 2000-01-01 and 2100-01-01: catches seconds sent as milliseconds and garbage.
Millis = Annotated[int, Meta(ge=946_684_800_000, lt=4_102_444_800_000, description="UTC, epoch ms")]
Uuid = Annotated[
    str, Meta(pattern=r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$")
]
Short = Annotated[str, Meta(max_length=100)]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Personal = Annotated[str, Meta(min_length=1, max_length=200, extra_json_schema=_PII)]
Quasi = Annotated[str, Meta(max_length=300, extra_json_schema=_QI)]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO-4217")]

INSTALL_TYPES = ("install", "reinstall", "reattribution", "uninstall")


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type", omit_defaults=True):
    """Fields every event has. Required: ``event_id``, ``app_id``, ``platform``, ``event_time``,
    ``sdk_version``, ``os_version``, ``device_id``, ``media_source``. Set by the server: ``received_at``,
    ``is_organic`` and, for revenue, ``event_revenue_usd``."""

    event_id: Uuid
    app_id: Name
    platform: Literal["android", "ios"]
    event_time: Millis
    install_time: Millis | None = None
    received_at: Annotated[int, Meta(ge=0, extra_json_schema=_SERVER)] = 0
    event_source: Literal["sdk", "s2s"] = "s2s"
    sdk_version: Short
    app_version: Short | None = None
    os_version: Short
    # identifiers (personal data)
    device_id: Personal
    idfa: Annotated[Uuid, Meta(extra_json_schema=_PII)] | None = None
    idfv: Annotated[Uuid, Meta(extra_json_schema=_PII)] | None = None
    advertising_id: Personal | None = None
    oaid: Personal | None = None
    amazon_aid: Personal | None = None
    android_id: Personal | None = None
    imei: Personal | None = None
    customer_user_id: Personal | None = None
    ip: Annotated[str, Meta(max_length=45, extra_json_schema=_PII)] | None = None
    att: Literal["authorized", "denied", "not_determined", "restricted"] | None = None
    is_lat: bool | None = None
    # device and place (quasi-identifiers)
    user_agent: Quasi | None = None
    device_model: Quasi | None = None
    device_category: Literal["phone", "tablet"] | None = None
    language: Quasi | None = None
    carrier: Quasi | None = None
    wifi: bool | None = None
    country_code: Country = "ZZ"
    region: Quasi | None = None
    city: Quasi | None = None
    postal_code: Quasi | None = None
    dma: Quasi | None = None
    # attribution
    media_source: Name
    is_organic: Annotated[bool, Meta(extra_json_schema=_SERVER)] = False
    af_prt: Short | None = None
    af_channel: Short | None = None
    af_siteid: Short | None = None
    af_sub_siteid: Short | None = None
    campaign: Short | None = None
    af_c_id: Short | None = None
    af_adset: Short | None = None
    af_adset_id: Short | None = None
    af_ad: Short | None = None
    af_ad_id: Short | None = None
    af_ad_type: Short | None = None
    af_sub1: Short | None = None
    af_sub2: Short | None = None
    af_sub3: Short | None = None
    af_sub4: Short | None = None
    af_sub5: Short | None = None
    click_id: Short | None = None
    attributed_touch_type: Literal["click", "impression", "tv", "pre-install"] | None = None
    attributed_touch_time: Millis | None = None
    match_type: Literal["id_matching", "referrer", "probabilistic", "srn"] | None = None
    is_retargeting: bool = False
    retargeting_conversion_type: Literal["re-engagement", "re-attribution"] | None = None


class Install(Event, frozen=True, kw_only=True, tag="install"):
    """A first app launch. ``install_time`` defaults to ``event_time``."""

    af_cost_model: Literal["CPI", "CPC", "CPM"] | None = None
    af_cost_value: Annotated[float, Meta(ge=0)] | None = None
    af_cost_currency: Currency | None = None


class Reinstall(Install, frozen=True, kw_only=True, tag="reinstall"):
    """A launch after an uninstall, inside the re-attribution window (not counted as an install)."""


class Reattribution(Install, frozen=True, kw_only=True, tag="reattribution"):
    """A reinstall won by a retargeting campaign."""


class Uninstall(Install, frozen=True, kw_only=True, tag="uninstall"):
    """The app was removed."""


class InApp(Event, frozen=True, kw_only=True, tag="in_app"):
    """An in-app event; inherits the install's attribution. ``event_revenue_currency`` is required with
    ``event_revenue`` (which may be negative: a refund)."""

    install_time: Millis  # required here: copied from the install record
    event_name: Name
    event_value: Annotated[str, Meta(max_length=1000)] | None = None
    event_revenue: Annotated[float, Meta(ge=-1e9, le=1e9)] | None = None
    event_revenue_currency: Currency | None = None
    event_revenue_usd: Annotated[float, Meta(extra_json_schema=_SERVER)] | None = None
    is_receipt_validated: bool | None = None


class Session(Event, frozen=True, kw_only=True, tag="session"):
    """An app open."""

    install_time: Millis


AnyEvent = Install | Reinstall | Reattribution | Uninstall | InApp | Session
"""Any event, told apart by ``event_type``."""

PERSONAL_DATA_FIELDS = frozenset(
    {"device_id", "idfa", "idfv", "advertising_id", "oaid", "amazon_aid", "android_id", "imei"}
    | {"customer_user_id", "ip"}
)
QUASI_IDENTIFIER_FIELDS = frozenset(
    ("user_agent", "device_model", "language", "carrier", "region", "city", "postal_code", "dma")
)

TOPIC_OF_TYPE = {
    "install": "installs.v1",
    "reinstall": "installs.v1",
    "reattribution": "installs.v1",
    "uninstall": "installs.v1",
    "in_app": "inapps.v1",
    "session": "sessions.v1",
}
"""Broker topic of each ``event_type``."""


class EventView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields the Reports service reads: decoding only these is several times faster than the whole
    event (msgspec skips the rest)."""

    event_type: str
    app_id: str
    platform: str
    event_time: int
    received_at: int = 0
    device_id: str
    country_code: str = "ZZ"
    media_source: str
    campaign: str | None = None
    event_name: str | None = None
    event_revenue_usd: float | None = None


INSTALLS: Topic[EventView] = Topic("installs.v1", EventView)
INAPPS: Topic[EventView] = Topic("inapps.v1", EventView)
SESSIONS: Topic[EventView] = Topic("sessions.v1", EventView)
