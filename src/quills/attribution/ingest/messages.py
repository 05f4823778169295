"""The ingest API's contract: request decoders and the response bodies (accepted, and problems)."""

from __future__ import annotations

import msgspec

from quills.attribution.events import AnyEvent

__all__ = ("Accepted", "FieldError", "Problem", "decode_event", "decode_events", "decode_raw_list", "encode")


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """``202``: every event of the request is durable in the log."""

    accepted: int


class FieldError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One reason an event was refused: ``index`` in the batch (None for a single event), the JSON
    ``path`` of the field (``$.app_id``) and why."""

    index: int | None = None
    path: str = "$"
    reason: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Any 4xx/5xx: ``error`` is a short code (``validation_failed``, ``unauthorized``, ...), ``detail`` a
    sentence, ``errors`` every field error (all events of a batch, by index)."""

    error: str
    detail: str
    errors: list[FieldError] = []


decode_event = msgspec.json.Decoder(AnyEvent).decode
decode_events = msgspec.json.Decoder(list[AnyEvent]).decode
decode_raw_list = msgspec.json.Decoder(list[msgspec.Raw]).decode
encode = msgspec.json.Encoder().encode
