"""Validation of configuration at save (pure): request bodies to partners and rules, or the reasons why not.

Reads: JSON request bodies. Writes: ``Partner`` / ``PostbackRule`` values or a list of errors, each naming
the field. The network check of a rule's target (SSRF) is done by the caller with ``TargetPolicy``, since
it needs DNS.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from quills.attribution.config.messages import Partner, PostbackRule
from quills.attribution.config.template import parse

__all__ = ("decode", "validate_rule", "probe_url", "header_problems")

T = TypeVar("T", Partner, PostbackRule)
_TOKEN = re.compile(r"\{[^{}]*\}")
_RESERVED_HEADERS = frozenset(("host", "content-length", "transfer-encoding", "connection"))


def header_problems(name: str, value: str) -> list[str]:
    """Why a rule may not send the header line ``name: value`` (empty when it may): a name that is not a
    token of ASCII letters, digits and ``-``, a value that could add a line or a request, or a header the
    sender sets itself. Checked at save and again by the client at send."""
    problems = []
    if not name or not all(c.isascii() and (c.isalnum() or c == "-") for c in name):
        problems.append("not a header name (ASCII letters, digits and '-')")
    if any(c in value for c in "\r\n\x00"):
        problems.append("control characters are not allowed")
    if name.lower() in _RESERVED_HEADERS:
        problems.append("set by the sender, not configurable")
    return problems


def decode(body: bytes, kind: type[T], **fixed: str) -> T | list[str]:
    """Decode ``body`` as ``kind``; ``fixed`` fields (ids from the path) override or fill the body."""
    try:
        raw = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError as exc:
        return [f"body is not JSON: {exc}"]
    if not isinstance(raw, dict):
        return ["body must be a JSON object"]
    for name, value in fixed.items():
        if name in raw and raw[name] != value:
            return [f"{name}: {raw[name]!r} in the body differs from {value!r} in the path"]
        raw[name] = value
    raw.pop("version", None)  # set by the store
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        return [str(exc)]


def validate_rule(rule: PostbackRule) -> list[str]:
    """Every problem of ``rule`` that needs no network: templates, regex, header values, event names."""
    errors: list[str] = []
    url = parse(rule.url_template, url=True)
    if isinstance(url, list):
        errors.extend(f"url_template: {e}" for e in url)
    if rule.body_template is not None:
        body = parse(rule.body_template, url=False)
        if isinstance(body, list):
            errors.extend(f"body_template: {e}" for e in body)
        if rule.method != "POST":
            errors.append("body_template: only a POST rule sends a body")
    for name, value in rule.headers.items():
        errors.extend(f"headers.{name}: {problem}" for problem in header_problems(name, value))
    if rule.filters.campaign_regex is not None:
        try:
            re.compile(rule.filters.campaign_regex)
        except re.error as exc:
            errors.append(f"filters.campaign_regex: {exc}")
    if "*" in rule.event_names and len(rule.event_names) > 1:
        errors.append("event_names: '*' means every name; list names or '*' alone")
    if not rule.event_types:
        errors.append("event_types: at least one event type")
    if "session" in rule.event_types:
        # the Postbacks service reads installs.v1 and inapps.v1 only: sessions are 70 % of all events
        errors.append(
            "event_types: session postbacks are not supported (the service does not read sessions.v1)"
        )
    return errors


def probe_url(rule: PostbackRule) -> str:
    """The rule's URL with every placeholder replaced by ``x``: what the SSRF check resolves (macros are
    never in the host, so the host is the real one)."""
    return _TOKEN.sub("x", rule.url_template)
