"""URL and body templates: ``{macro}`` placeholders parsed once, at save, into literal and macro parts.

A placeholder is ``{name}`` or ``{modifier:name}`` with modifier ``sha1``, ``md5`` (hex digest of the
value) or ``raw`` (not percent-encoded). Unknown macros, unknown modifiers, unbalanced braces and macros
in the scheme or host are refused with a message naming them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ("MACROS", "PERSONAL_MACROS", "REVENUE_MACROS", "VALUE_MACROS", "Part", "Template", "parse")

MACROS = frozenset(
    (
        "click_id advertising_id idfa idfv device_id customer_user_id app_id platform event_type event_name "
        "event_value revenue revenue_usd currency country_code ip user_agent os_version device_model "
        "timestamp install_unix_ts media_source campaign campaign_id adset ad site_id is_retargeting "
        "attributed_touch_type postback_id"
    ).split()
)
"""Every macro a template may use (the reference's list, plus ``customer_user_id``)."""

PERSONAL_MACROS = frozenset(
    ("advertising_id", "idfa", "idfv", "device_id", "customer_user_id", "ip", "user_agent")
)
"""Rendered empty when an event's postback is privacy-stripped."""
REVENUE_MACROS = frozenset(("revenue", "revenue_usd", "currency"))
VALUE_MACROS = frozenset(("event_value",))
MODIFIERS = frozenset(("sha1", "md5", "raw"))

_TOKEN = re.compile(r"\{([^{}]*)\}")
# In a body, braces are also JSON's: only a brace pair around a bare name (``{click_id}``,
# ``{sha1:idfa}``) is a placeholder, and other braces are literal text.
_BODY_TOKEN = re.compile(r"\{\s*([A-Za-z0-9_]+(?::[A-Za-z0-9_]+)?)\s*\}")


@dataclass(frozen=True, slots=True)
class Part:
    """A literal (``macro`` empty) or a placeholder."""

    text: str
    macro: str = ""
    modifier: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: its parts, and for URLs the query parameters split on ``&`` (so a parameter
    whose macro has no value can be dropped)."""

    source: str
    head: tuple[Part, ...]
    params: tuple[tuple[Part, ...], ...]
    macros: frozenset[str]
    flat: tuple[Part, ...] = ()  # head, then the params joined by "&": rendered in one pass


def _parts(text: str, errors: list[str], *, body: bool = False) -> tuple[Part, ...]:
    parts: list[Part] = []
    pos = 0
    for match in (_BODY_TOKEN if body else _TOKEN).finditer(text):
        if match.start() > pos:
            parts.append(Part(text[pos : match.start()]))
        inner = match.group(1).strip()
        modifier, _, name = inner.rpartition(":")
        if modifier and modifier not in MODIFIERS:
            errors.append(f"unknown modifier {modifier!r} in {{{inner}}}; use sha1, md5 or raw")
        if name not in MACROS:
            errors.append(f"unknown macro {{{inner}}}; known: {', '.join(sorted(MACROS))}")
        parts.append(Part(match.group(0), name, modifier))
        pos = match.end()
    if pos < len(text):
        parts.append(Part(text[pos:]))
    if not body:
        errors.extend(
            f"unbalanced brace in {p.text!r}"
            for p in parts
            if not p.macro and ("{" in p.text or "}" in p.text)
        )
    return tuple(parts)


def parse(text: str, *, url: bool) -> Template | list[str]:
    """Parse ``text``; returns the template or every error found."""
    errors: list[str] = []
    if url:
        head_text, sep, query = text.partition("?")
        if _TOKEN.search(head_text.split("/", 3)[2] if head_text.count("/") >= 2 else head_text):
            errors.append("macros are not allowed in the scheme or host of the URL")
        try:
            split = urlsplit(_TOKEN.sub("x", text))
        except ValueError as exc:
            return [f"invalid URL: {exc}"]
        if split.scheme not in ("http", "https"):
            errors.append(f"the URL must start with http:// or https://, got {split.scheme or 'none'!r}")
        if not split.hostname:
            errors.append("the URL has no host")
        if split.username or split.password:
            errors.append("credentials in the URL are not allowed; use a header")
        head = _parts(head_text + sep, errors)
        params = tuple(_parts(p, errors) for p in query.split("&") if p) if sep else ()
    else:
        head, params = _parts(text, errors, body=True), ()
    if errors:
        return errors
    names = {p.macro for p in head if p.macro} | {p.macro for ps in params for p in ps if p.macro}
    flat: list[Part] = list(head)
    for i, param in enumerate(params):
        if i:
            flat.append(Part("&"))
        flat.extend(param)
    return Template(text, head, params, frozenset(names), tuple(flat))
