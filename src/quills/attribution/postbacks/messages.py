"""The Postbacks service's contract: the event fields it reads, and a delivery to send.

``PostbackEvent`` decodes only the fields rules and macros use from ``installs.v1`` and ``inapps.v1``
(msgspec skips the rest). ``Delivery`` is one (event, rule) pair to send, with its rendered request and
its schedule; ``postback_id`` is its idempotency key.
"""

from __future__ import annotations

import msgspec

from quills.attribution.events import INSTALL_TYPES
from quills.streams import Topic

__all__ = ("PostbackEvent", "Delivery", "POSTBACK_TOPICS", "INSTALL_TYPES")


class PostbackEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields of an event that postback rules and macros read."""

    event_type: str
    event_id: str
    app_id: str
    platform: str
    event_time: int
    install_time: int | None = None
    received_at: int = 0
    device_id: str
    idfa: str | None = None
    idfv: str | None = None
    advertising_id: str | None = None
    customer_user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    os_version: str | None = None
    device_model: str | None = None
    att: str | None = None
    is_lat: bool | None = None
    country_code: str = "ZZ"
    media_source: str
    is_organic: bool = False
    campaign: str | None = None
    af_c_id: str | None = None
    af_adset: str | None = None
    af_ad: str | None = None
    af_siteid: str | None = None
    click_id: str | None = None
    is_retargeting: bool = False
    attributed_touch_type: str | None = None
    event_name: str | None = None
    event_value: str | None = None
    event_revenue: float | None = None
    event_revenue_currency: str | None = None
    event_revenue_usd: float | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One postback to send: who, what, and when (epoch ms)."""

    # gc=False: evaluation makes one per match, and its fields (strings, numbers, a dict of strings) can
    # form no reference cycle, so the cycle collector need not track them

    postback_id: str
    rule_id: str
    partner_id: str
    app_id: str
    event_id: str
    method: str
    url: str
    body: str | None = None
    headers: dict[str, str] = {}
    timeout_s: float = 5.0
    max_attempts: int = 5
    created_ms: int
    due_ms: int
    expires_ms: int


POSTBACK_TOPICS = (
    Topic("installs.v1", PostbackEvent),
    Topic("inapps.v1", PostbackEvent),
)
"""What the service consumes (sessions are not posted by default rules; add ``sessions.v1`` if needed)."""
