"""Ingest decisions, free of I/O: parse a body into events, check them against the caller's app, stamp
what the server sets, and encode each event for its topic.

Reads: request bodies. Writes: nothing (returns events, encoded payloads or a ``Refusal``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from quills.attribution.events import TOPIC_OF_TYPE, Event, InApp, Install
from quills.attribution.ingest.messages import (
    FieldError,
    Problem,
    decode_event,
    decode_events,
    decode_raw_list,
    encode,
)

__all__ = ("FX_TO_USD", "Refusal", "parse_single", "parse_batch", "check", "stamp", "encode_by_topic")

# Demo exchange rates (USD per unit). A real deployment loads daily rates; an unknown currency is refused.
FX_TO_USD = {
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "INR": 0.012, "BRL": 0.18, "IDR": 0.000063, "MXN": 0.055,
    "RUB": 0.011, "TRY": 0.029, "PHP": 0.017, "VND": 0.000039, "PKR": 0.0036, "EGP": 0.02, "NGN": 0.00065,
    "THB": 0.028, "JPY": 0.0067, "KRW": 0.00072, "CAD": 0.73, "AUD": 0.65, "CNY": 0.14,
}  # fmt: skip

_JSON = "application/json"
_NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the service will not accept: the HTTP status and the problem document."""

    status: int
    problem: Problem


def _field_error(exc: msgspec.MsgspecError, index: int | None) -> FieldError:
    text = str(exc)
    reason, sep, where = text.rpartition(" - at `")
    if not sep:
        return FieldError(index=index, path="$", reason=text)
    path = where.rstrip("`")
    return FieldError(index=index, path=path, reason=reason)


def _invalid(errors: list[FieldError], n: int) -> Refusal:
    noun = "event" if n == 1 else "events"
    bad = len({e.index for e in errors})
    return Refusal(
        422,
        Problem(
            error="validation_failed",
            detail=f"{bad} of {n} {noun} {'is' if bad == 1 else 'are'} invalid; nothing was accepted",
            errors=errors,
        ),
    )


def media_type(content_type: str) -> str:
    """``application/json`` from ``application/json; charset=utf-8``."""
    return content_type.partition(";")[0].strip().lower()


def parse_single(body: bytes, content_type: str) -> list[Event] | Refusal:
    """One JSON event (``application/json``)."""
    if media_type(content_type) != _JSON:
        return _unsupported(content_type, (_JSON,))
    try:
        return [decode_event(body)]
    except msgspec.ValidationError as exc:
        return _invalid([_field_error(exc, None)], 1)
    except msgspec.DecodeError as exc:
        return Refusal(400, Problem(error="malformed_json", detail=str(exc)))


def parse_batch(body: bytes, content_type: str, max_events: int) -> list[Event] | Refusal:
    """A JSON array (``application/json``) or NDJSON (``application/x-ndjson``) of up to ``max_events``.

    Fast path: the whole batch is decoded and validated in one call. When that fails, each event is
    decoded on its own so every invalid event is reported with its index.
    """
    kind = media_type(content_type)
    if kind == _JSON:
        array = body
    elif kind in _NDJSON:
        lines = [line for line in body.split(b"\n") if line.strip()]
        array = b"[" + b",".join(lines) + b"]"
    else:
        return _unsupported(content_type, (_JSON, _NDJSON[0]))
    try:
        events: list[Event] = list(decode_events(array))
    except msgspec.ValidationError:
        events = []
    except msgspec.DecodeError:
        if kind == _JSON:
            return _per_item(body, max_events)
        return _per_line(lines, max_events)
    else:
        if len(events) > max_events:
            return _too_many(len(events), max_events)
        if not events:
            return Refusal(422, Problem(error="empty_batch", detail="the batch holds no events"))
        return events
    return _per_item(array, max_events)


def _per_item(array: bytes, max_events: int) -> Refusal:
    try:
        items = decode_raw_list(array)
    except msgspec.ValidationError:
        return Refusal(422, Problem(error="not_an_array", detail="a batch is a JSON array of event objects"))
    except msgspec.DecodeError as exc:
        return Refusal(400, Problem(error="malformed_json", detail=str(exc)))
    if len(items) > max_events:
        return _too_many(len(items), max_events)
    errors: list[FieldError] = []
    for i, raw in enumerate(items):
        try:
            decode_event(raw)
        except msgspec.MsgspecError as exc:
            errors.append(_field_error(exc, i))
    return _invalid(errors, len(items))


def _per_line(lines: list[bytes], max_events: int) -> Refusal:
    if len(lines) > max_events:
        return _too_many(len(lines), max_events)
    errors: list[FieldError] = []
    for i, line in enumerate(lines):
        try:
            decode_event(line)
        except msgspec.ValidationError as exc:
            errors.append(_field_error(exc, i))
        except msgspec.DecodeError as exc:
            errors.append(FieldError(index=i, path="$", reason=f"line {i + 1} is not JSON: {exc}"))
    return _invalid(errors, len(lines))


def _too_many(n: int, limit: int) -> Refusal:
    return Refusal(
        413, Problem(error="too_many_events", detail=f"a batch holds at most {limit} events, got {n}")
    )


def _unsupported(content_type: str, allowed: tuple[str, ...]) -> Refusal:
    return Refusal(
        415,
        Problem(
            error="unsupported_media_type",
            detail=f"Content-Type {content_type or '(none)'!r} is not accepted; use {' or '.join(allowed)}",
        ),
    )


def check(
    events: list[Event], app_id: str, now_ms: int, max_future_ms: int, *, batch: bool
) -> Refusal | None:
    """Refuse events of another app (403) or with inconsistent fields (422); None when all are fine."""
    foreign = [i for i, e in enumerate(events) if e.app_id != app_id]
    if foreign:
        return Refusal(
            403,
            Problem(
                error="forbidden_app",
                detail=f"this key belongs to app {app_id!r} and may only send its events",
                errors=[
                    FieldError(index=i if batch else None, path="$.app_id", reason=f"not {app_id!r}")
                    for i in foreign
                ],
            ),
        )
    errors: list[FieldError] = []
    latest = now_ms + max_future_ms
    for i, e in enumerate(events):
        index = i if batch else None
        if e.event_time > latest:
            errors.append(
                FieldError(
                    index=index, path="$.event_time", reason="more than the allowed skew in the future"
                )
            )
        if isinstance(e, InApp) and e.event_revenue is not None:
            currency = e.event_revenue_currency
            if currency is None:
                errors.append(
                    FieldError(
                        index=index,
                        path="$.event_revenue_currency",
                        reason="required when event_revenue is set",
                    )
                )
            elif currency not in FX_TO_USD:
                errors.append(
                    FieldError(
                        index=index,
                        path="$.event_revenue_currency",
                        reason=f"unsupported currency {currency!r}",
                    )
                )
    return _invalid(errors, len(events)) if errors else None


def stamp(events: list[Event], now_ms: int) -> None:
    """Set the server's fields in place: ``received_at``, ``is_organic``, ``event_revenue_usd``, and an
    install's missing ``install_time``. The events were just decoded for this request and are its own."""
    force = msgspec.structs.force_setattr
    for e in events:
        force(e, "received_at", now_ms)
        force(e, "is_organic", e.media_source == "organic")
        if isinstance(e, InApp):
            if e.event_revenue is not None and e.event_revenue_currency is not None:
                usd = round(e.event_revenue * FX_TO_USD[e.event_revenue_currency], 6)
                force(e, "event_revenue_usd", usd)
            else:
                force(e, "event_revenue_usd", None)
        elif isinstance(e, Install) and e.install_time is None:
            force(e, "install_time", e.event_time)


def encode_by_topic(events: list[Event]) -> dict[str, list[bytes]]:
    """Each event encoded once (JSON, in C), grouped by its topic."""
    out: dict[str, list[bytes]] = {}
    topic_of = TOPIC_OF_TYPE
    for e in events:
        name = topic_of[e.__struct_config__.tag]  # type: ignore[index]
        bucket = out.get(name)
        if bucket is None:
            out[name] = bucket = []
        bucket.append(encode(e))
    return out
