"""Dead letters: what goes to ``<topic>.dlq`` when a message cannot be decoded or validated."""

from __future__ import annotations

import msgspec

__all__ = ("DeadLetter",)


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message the consumer could not use, with everything needed to inspect or replay it.

    ``payload`` is the original bytes (base64 in the JSON encoding); ``partition`` and ``offset`` locate it
    (NATS: partition 0 and the stream sequence); ``reason`` is the decoder's message, which names the bad
    field; ``time_ms`` is when it was dead-lettered (milliseconds since the epoch).
    """

    topic: str
    partition: int
    offset: int
    group: str
    reason: str
    payload: bytes
    time_ms: int


DEAD_LETTER_DECODER = msgspec.json.Decoder(DeadLetter)
