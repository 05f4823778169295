"""Rendering a rule's templates for one event: macro values, privacy stripping, percent-encoding.

Every substituted value is percent-encoded per RFC 3986 (everything but ``A-Z a-z 0-9 - . _``; even
``~`` is encoded, as some partners' parsers expect), so a value can never add a parameter or change the
path; the template's own text is left as written. In a body, values are JSON-escaped instead. A macro with
no value renders empty, or drops its whole query parameter when the rule says ``missing: drop``.

Only the macros a rule's templates use are computed (each through a small getter), and values made only
of unreserved characters skip the encoder: rendering is most of the cost of evaluation. For the common
case (a URL, no body, missing values rendered empty) each rule's URL is compiled once into a function of
straight-line code (``render_event_url``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
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

__all__ = ("macro_values", "render_url", "render_event_url", "render_body", "encode_value", "postback_id")

_blake = hashlib.blake2b
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-]*").fullmatch  # fullmatch: a third of the time of match + \Z


_rule_states: dict[str, Any] = {}


def postback_id(rule_id: str, event_id: str) -> str:
    """The idempotency key of (rule, event): 128 bits of BLAKE2b of ``rule_id + "\\x1f" + event_id``, hex;
    the same forever."""
    # the hash state after the rule's part, copied per event: a third cheaper than hashing it all anew
    state = _rule_states.get(rule_id)
    if state is None:
        if len(_rule_states) >= 65536:
            _rule_states.clear()
        state = _rule_states[rule_id] = _blake(f"{rule_id}\x1f".encode(), digest_size=16)
    h = state.copy()
    h.update(event_id.encode())
    return h.hexdigest()


def encode_value(value: str) -> str:
    """``value`` percent-encoded for any place in a URL."""
    if _UNRESERVED(value):
        return value
    return _quote(value)


@functools.lru_cache(maxsize=16384)
def _quote(value: str) -> str:
    # cached: the values that need encoding are mostly campaign, adset and event names, which repeat
    return quote(value, safe="").replace("~", "%7E")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 5))
    return str(value)


Getter = Callable[[PostbackEvent, CompiledRule, str], object]

_GETTERS: dict[str, Getter] = {
    "click_id": lambda e, c, p: e.click_id,
    "advertising_id": lambda e, c, p: e.advertising_id,
    "idfa": lambda e, c, p: e.idfa,
    "idfv": lambda e, c, p: e.idfv,
    "device_id": lambda e, c, p: e.device_id,
    "customer_user_id": lambda e, c, p: e.customer_user_id,
    "app_id": lambda e, c, p: e.app_id,
    "platform": lambda e, c, p: e.platform,
    "event_type": lambda e, c, p: e.event_type,
    "event_name": lambda e, c, p: (
        c.rule.partner_event_map.get(e.event_name, e.event_name) if e.event_name is not None else None
    ),
    "event_value": lambda e, c, p: e.event_value,
    "revenue": lambda e, c, p: e.event_revenue if c.rule.send_revenue == "values_and_revenue" else None,
    "revenue_usd": lambda e, c, p: (
        e.event_revenue_usd
        if c.rule.send_revenue == "values_and_revenue" and e.event_revenue is not None
        else None
    ),
    "currency": lambda e, c, p: (
        e.event_revenue_currency
        if c.rule.send_revenue == "values_and_revenue" and e.event_revenue is not None
        else None
    ),
    "country_code": lambda e, c, p: e.country_code,
    "ip": lambda e, c, p: e.ip,
    "user_agent": lambda e, c, p: e.user_agent,
    "os_version": lambda e, c, p: e.os_version,
    "device_model": lambda e, c, p: e.device_model,
    "timestamp": lambda e, c, p: str(e.event_time // 1000),
    "install_unix_ts": lambda e, c, p: str((e.install_time or e.event_time) // 1000),
    "media_source": lambda e, c, p: e.media_source,
    "campaign": lambda e, c, p: e.campaign,
    "campaign_id": lambda e, c, p: e.af_c_id,
    "adset": lambda e, c, p: e.af_adset,
    "ad": lambda e, c, p: e.af_ad,
    "site_id": lambda e, c, p: e.af_siteid,
    "is_retargeting": lambda e, c, p: e.is_retargeting,
    "attributed_touch_type": lambda e, c, p: e.attributed_touch_type,
    "postback_id": lambda e, c, p: p,
}


def macro_values(
    event: PostbackEvent, compiled: CompiledRule, pid: str, *, strip: bool
) -> dict[str, str | None]:
    """The value of every macro ``compiled``'s templates use, for ``event`` (None: no value)."""
    silenced = compiled.rule.send_revenue == "none"
    values: dict[str, str | None] = {}
    for macro in compiled.macros:
        if (strip and macro in PERSONAL_MACROS) or (
            silenced and (macro in REVENUE_MACROS or macro in VALUE_MACROS)
        ):
            values[macro] = None
            continue
        value = _GETTERS[macro](event, compiled, pid)
        values[macro] = value if value is None or type(value) is str else _text(value)
    return values


def _value(part: Part, values: dict[str, str | None], escape: Callable[[str], str]) -> str | None:
    value = values.get(part.macro)
    if not value:
        return None
    return _modified(part.modifier, value, escape)


def _modified(modifier: str, value: str, escape: Callable[[str], str]) -> str:
    """``value`` rendered through ``modifier`` (none: ``escape``d; sha1/md5: hex digest; raw: as is)."""
    if not modifier:
        return escape(value)
    if modifier == "sha1":
        return hashlib.sha1(value.encode()).hexdigest()
    if modifier == "md5":
        return hashlib.md5(value.encode()).hexdigest()
    # raw is trusted to be URL-safe already, but it still may not break out of the URL
    return value if value.isprintable() and " " not in value else escape(value)


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
    if not drop_missing:
        out = []
        for part in template.flat:
            if not part.macro:
                out.append(part.text)
                continue
            value = values.get(part.macro)
            if value:
                if part.modifier:
                    out.append(_value(part, values, encode_value) or "")
                elif _UNRESERVED(value):
                    out.append(value)
                else:
                    out.append(_quote(value))
        return "".join(out)
    url = _join(template.head, values, encode_value)
    params = []
    for param in template.params:
        if (
            drop_missing
            and all(not values.get(p.macro) for p in param if p.macro)
            and any(p.macro for p in param)
        ):
            continue
        params.append(_join(param, values, encode_value))
    return url + "&".join(params)


# one macro of a URL: (getter, attribute to read instead of calling it or "", flags, modifier)
_Step = tuple[Getter, str, int, str]
_BLOCKED_IF_STRIPPED, _SILENCED, _TRUSTED, _REPEATS, _PID = 1, 2, 4, 8, 16
# values we make ourselves (hex, digits, true/false): never need percent-encoding
_TRUSTED_MACROS = frozenset(("timestamp", "install_unix_ts", "is_retargeting"))
# values shared by many events (names, not ids): their encoding is looked up, not recomputed
_REPEATING_MACROS = frozenset(
    (
        "app_id platform event_type event_name currency country_code os_version device_model media_source "
        "campaign campaign_id adset ad site_id attributed_touch_type"
    ).split()
)
# macros that read one event field (else: the getter)
_FIELDS = {
    "click_id": "click_id",
    "advertising_id": "advertising_id",
    "idfa": "idfa",
    "idfv": "idfv",
    "device_id": "device_id",
    "customer_user_id": "customer_user_id",
    "app_id": "app_id",
    "platform": "platform",
    "event_type": "event_type",
    "event_value": "event_value",
    "country_code": "country_code",
    "ip": "ip",
    "user_agent": "user_agent",
    "os_version": "os_version",
    "device_model": "device_model",
    "media_source": "media_source",
    "campaign": "campaign",
    "campaign_id": "af_c_id",
    "adset": "af_adset",
    "ad": "af_ad",
    "site_id": "af_siteid",
    "attributed_touch_type": "attributed_touch_type",
}
_renderers: dict[int, tuple[CompiledRule, Callable[[PostbackEvent, str, bool], str]]] = {}
_encoded: dict[str, str] = {}


def _url_plan(compiled: CompiledRule) -> tuple[str, tuple[_Step, ...]]:
    """The rule's URL as a ``%`` format (its text, ``%`` doubled, and ``%s`` per macro) and its macros."""
    silenced = compiled.rule.send_revenue == "none"
    text: list[str] = []
    steps: list[_Step] = []
    for part in compiled.url.flat:
        macro = part.macro
        if not macro:
            text.append(part.text.replace("%", "%%"))
            continue
        text.append("%s")
        flags = _BLOCKED_IF_STRIPPED if macro in PERSONAL_MACROS else 0
        if silenced and (macro in REVENUE_MACROS or macro in VALUE_MACROS):
            flags |= _SILENCED
        if macro in _TRUSTED_MACROS:
            flags |= _TRUSTED
        if macro in _REPEATING_MACROS:
            flags |= _REPEATS
        if macro == "postback_id":
            flags |= _PID | _TRUSTED
        steps.append((_GETTERS[macro], _FIELDS.get(macro, ""), flags, part.modifier))
    return "".join(text), tuple(steps)


# getters written out in the renderers' source (the same expressions as in _GETTERS)
_INLINE = {
    _GETTERS["timestamp"]: "str(event.event_time // 1000)",
    _GETTERS["install_unix_ts"]: "str((event.install_time or event.event_time) // 1000)",
    _GETTERS["event_name"]: (
        "_pem.get(event.event_name, event.event_name) if event.event_name is not None else None"
    ),
}


def _url_renderer(compiled: CompiledRule) -> Callable[[PostbackEvent, str, bool], str]:
    """The rule's URL as a function of (event, postback id, strip), compiled once per rule.

    The plan's steps become straight-line code (``render_event_url`` through a loop over the steps spent
    about half of evaluation's time on the loop itself). Only names of this module go into the source:
    event attributes from ``_FIELDS`` and numbered locals; the template's text and modifiers are bound as
    values, never written into the code.
    """
    # keyed by identity, holding the rule so that its id is not reused while cached
    known = _renderers.get(id(compiled))
    if known is not None and known[0] is compiled:
        return known[1]
    fmt, steps = _url_plan(compiled)
    scope: dict[str, Any] = {
        "_FMT": fmt,
        "_C": compiled,
        "_pem": compiled.rule.partner_event_map,
        "_U": _UNRESERVED,
        "_q": _quote,
        "_t": _text,
        "_m": _modified,
        "_e": encode_value,
        "_E": _encoded,
        "_er": _encode_repeating,
    }
    lines = ["def render(event, pid, strip):"]
    names = []
    for i, (getter, field, flags, modifier) in enumerate(steps):
        v = f"v{i}"
        names.append(v)
        if flags & _SILENCED:
            lines.append(f"    {v} = ''")
            continue
        body: list[str] = []
        if flags & _PID:
            body.append(f"{v} = pid")
        elif field:
            assert field.isidentifier()  # from _FIELDS: event attributes, str or None
            body.append(f"{v} = event.{field}")
        elif getter in _INLINE:
            # the getter's own expression (str or None), without the call
            body.append(f"{v} = {_INLINE[getter]}")
        else:
            scope[f"_g{i}"] = getter
            body.append(f"{v} = _g{i}(event, _C, pid)")
            body.append(f"if not isinstance({v}, str): {v} = _t({v})")
        body.append(f"if not {v}: {v} = ''")
        if modifier:
            scope[f"_m{i}"] = modifier
            body.append(f"else: {v} = _m(_m{i}, {v}, _e)")
        elif flags & _REPEATS:
            body.append(f"else: {v} = _E.get({v}) or _er({v})")
        elif not flags & _TRUSTED:
            body.append(f"elif not _U({v}): {v} = _q({v})")
        if flags & _BLOCKED_IF_STRIPPED:
            lines.append(f"    if strip: {v} = ''")
            lines.append("    else:")
            lines.extend(f"        {line}" for line in body)
        else:
            lines.extend(f"    {line}" for line in body)
    lines.append(f"    return _FMT % ({''.join(n + ', ' for n in names)})")
    exec("\n".join(lines), scope)  # the source is made of this module's names only (see above)
    render: Callable[[PostbackEvent, str, bool], str] = scope["render"]
    if len(_renderers) >= 65536:
        _renderers.clear()
    _renderers[id(compiled)] = (compiled, render)
    return render


def _encode_repeating(value: str) -> str:
    encoded = _encoded.get(value)
    if encoded is None:
        encoded = value if _UNRESERVED(value) else _quote(value)
        if len(_encoded) >= 65536:
            _encoded.clear()
        _encoded[value] = encoded
    return encoded


def render_event_url(event: PostbackEvent, compiled: CompiledRule, pid: str, *, strip: bool) -> str:
    """``render_url(compiled.url, macro_values(event, compiled, pid, strip=strip), drop_missing=False)``
    in one pass, without the dict of values (the common case: most of evaluation's time)."""
    return _url_renderer(compiled)(event, pid, strip)


def _json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


def render_body(template: Template, values: dict[str, str | None]) -> str:
    """The body for ``values`` (values JSON-escaped, so a JSON template stays valid JSON)."""
    return _join(template.head, values, _json_escape)
