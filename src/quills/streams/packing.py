"""Packed messages: many encoded messages of one key carried by one log message.

Why: the broker's cost is per log message, not per byte. Storing, replicating, delivering and acking a
message costs the NATS server ~5-10 us of CPU whatever its size, and each one costs the publisher and
every consumer a Python call or two. An ingest request that brings 500 events would otherwise pay that 500
times per consumer group. A packed message is the JSON array of its messages, ``[m1,m2,...]``, so it costs
one log message, and a consumer decodes it in one C call.

What stays the same: consumers see the messages one by one, in order, in their ``Batch`` (the runtime
flattens packed messages; see ``quills.streams.consumer``), so a handler cannot tell whether its messages
were packed. Positions are per log message, so a packed message is stored with a batch's results as a
whole, or not at all: the exactly-once effect of transactional sinks holds. Per-key order holds because
only messages of one key are packed together, in their order. A message of a packed message that fails to
decode goes to the dead-letter topic alone (with its own bytes); the others of its pack go on.

A topic whose schema is ``array_like`` encodes each message as an array and cannot carry packed messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from quills.errors import ConfigError

__all__ = ("pack", "pack_keyed", "DEFAULT_PACK_BYTES", "DEFAULT_PACK_COUNT")

DEFAULT_PACK_BYTES = 256 * 1024
"""Default most bytes of one packed message: well under the brokers' 1 MiB message limit (NATS
``max_payload``, Kafka ``message.max.bytes``), and small enough that a batch's byte budget is exact."""

DEFAULT_PACK_COUNT = 1000
"""Default most messages in one packed message."""


def pack(
    values: Sequence[bytes], *, max_bytes: int = DEFAULT_PACK_BYTES, max_count: int = DEFAULT_PACK_COUNT
) -> list[bytes]:
    """Join encoded messages (JSON objects, in order) into as few packed messages as the limits allow.

    Args:
        values: the encoded messages, each one JSON object (what ``Topic.encode`` gives).
        max_bytes: most bytes of one packed message, >= 2 (default 256 KiB). A message larger than this on
            its own is packed alone (the broker's limit then decides).
        max_count: most messages in one packed message, >= 1 (default 1,000).

    Returns:
        The packed messages, each ``[v1,v2,...]``, in the order of ``values``.
    """
    if max_bytes < 2 or max_count < 1:
        raise ConfigError(f"pack: max_bytes must be >= 2 and max_count >= 1, got {max_bytes}, {max_count}")
    out: list[bytes] = []
    start = 0
    size = 1  # the opening bracket
    n = len(values)
    for i in range(n):
        # Each message adds its bytes and one separator (a comma, or the closing bracket for the last).
        grown = size + len(values[i]) + 1
        if i > start and (grown > max_bytes or i - start >= max_count):
            out.append(b"[" + b",".join(values[start:i]) + b"]")
            start, grown = i, 1 + len(values[i]) + 1
        size = grown
    if start < n:
        out.append(b"[" + b",".join(values[start:n]) + b"]")
    return out


def pack_keyed(
    values: Sequence[bytes],
    keys: Sequence[bytes | None],
    *,
    max_bytes: int = DEFAULT_PACK_BYTES,
    max_count: int = DEFAULT_PACK_COUNT,
) -> tuple[list[bytes], list[bytes | None]]:
    """``pack`` the messages of each key separately; returns the packed messages and their keys.

    Keys keep the order in which they first appear, and each key's messages keep theirs, so per-key order
    is what it would have been unpacked. Messages of different keys are never packed together (they may
    belong to different partitions).
    """
    if len(values) != len(keys):
        raise ConfigError(f"pack_keyed: {len(values)} values but {len(keys)} keys")
    by_key: dict[bytes | None, list[bytes]] = {}
    for value, key in zip(values, keys, strict=True):
        bucket = by_key.get(key)
        if bucket is None:
            by_key[key] = bucket = []
        bucket.append(value)
    packed: list[bytes] = []
    packed_keys: list[bytes | None] = []
    for key, bucket in by_key.items():
        chunk = pack(bucket, max_bytes=max_bytes, max_count=max_count)
        packed.extend(chunk)
        packed_keys.extend([key] * len(chunk))
    return packed, packed_keys
