"""Compressed packed messages on NATS: the publisher stores each packed message as a zstd frame, the
consumer expands it before decoding.

Why: the NATS server's CPU goes mostly to bytes, not messages, once events are packed (see
``quills.streams.packing``). Measured here with ~680-byte JSON events packed ~70 to a message, published
once and read by two groups: 8.5 us of server CPU per event with the stream's own S2 compression (the
server compresses every block it writes and expands every block it reads back), 4.8 with none, 1.3 with
the packs zstd-compressed by the publisher (~10x smaller: the events of one app and moment share most of
their text). The publisher pays ~0.3-1 us per event to compress and each consumer ~0.2-0.5 to expand,
less than the server saves, and the log, the wire and the disk carry a tenth of the bytes. Kafka needs
none of this: librdkafka compresses its record batches (lz4).

Format: a stored message that starts with the zstd frame magic (``28 b5 2f fd``) is a zstd frame (RFC
8878, content size in its header) holding a packed message; anything else is stored as published (JSON
starts with ``{`` or ``[``), so single messages, dead letters and streams written before stay readable,
and a reader outside quills expands frames with any zstd library. Only packed messages of at least
``MIN_COMPRESS_BYTES`` are compressed: small ones gain little and cost a call each.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import zstandard

__all__ = ("ZSTD_MAGIC", "MIN_COMPRESS_BYTES", "MAX_EXPANDED_BYTES", "Compressor", "Expander")

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first four bytes of a zstd frame."""

MIN_COMPRESS_BYTES = 2048
"""Packed messages shorter than this are stored as they are."""

MAX_EXPANDED_BYTES = 64 * 1024 * 1024
"""A frame that claims to expand past this is left compressed (and so fails to decode, and goes to the
dead-letter topic), so a forged frame cannot make a consumer allocate without bound."""

_PACKED = b"["


class Compressor:
    """Compresses the packed messages among published values (zstd level 1: ~0.7 GB/s here).

    Not thread-safe: one per connection (the backbone's event loop).
    """

    def __init__(self, *, level: int = 1) -> None:
        self._compress = zstandard.ZstdCompressor(level=level, write_content_size=True).compress

    def values(self, values: Sequence[bytes]) -> Sequence[bytes]:
        """``values`` with every packed message of ``MIN_COMPRESS_BYTES`` or more as a zstd frame."""
        if not any(map(bytes.startswith, values, repeat(_PACKED))):
            return values
        compress = self._compress
        return [compress(v) if v[:1] == _PACKED and len(v) >= MIN_COMPRESS_BYTES else v for v in values]


class Expander:
    """Expands the zstd frames among fetched values. Not thread-safe: one per source."""

    def __init__(self) -> None:
        self._decompress = zstandard.ZstdDecompressor().decompress

    def values(self, values: list[bytes]) -> tuple[list[bytes], int]:
        """``values`` with each frame expanded, and how many bytes they hold now.

        A frame that does not expand (corrupt, or claiming more than ``MAX_EXPANDED_BYTES``) is kept as
        it is: it then fails to decode and reaches the dead-letter topic with its bytes.
        """
        if not any(map(bytes.startswith, values, repeat(ZSTD_MAGIC))):
            return values, sum(map(len, values))
        out: list[bytes] = []
        for v in values:
            if v[:4] == ZSTD_MAGIC:
                try:
                    size = zstandard.frame_content_size(v)
                    if 0 <= size <= MAX_EXPANDED_BYTES:
                        v = self._decompress(v)
                except zstandard.ZstdError:
                    pass
            out.append(v)
        return out, sum(map(len, out))
