"""Compressed packed messages (zstd frames) without a broker: what is compressed, and what expands."""

from __future__ import annotations

import zstandard
from hypothesis import given
from hypothesis import strategies as st

from quills.streams import pack
from quills.streams.compression import (
    MAX_EXPANDED_BYTES,
    MIN_COMPRESS_BYTES,
    ZSTD_MAGIC,
    Compressor,
    Expander,
)

_OBJECT = st.integers(0, 10**6).map(lambda i: b'{"id":%d,"app_id":"app-%d"}' % (i, i % 7))


@given(st.lists(st.lists(_OBJECT, min_size=1, max_size=200), max_size=8))
def test_only_packs_of_min_compress_bytes_or_more_are_compressed_and_all_expand_back(
    groups: list[list[bytes]],
) -> None:
    """Property: packs past the threshold become frames, everything else is kept as is, and expanding
    gives back exactly what was published with its byte count."""
    values = [pack(g)[0] if len(g) > 1 else g[0] for g in groups]
    stored = Compressor().values(values)
    assert len(stored) == len(values)
    for value, kept in zip(values, stored, strict=True):
        framed = value[:1] == b"[" and len(value) >= MIN_COMPRESS_BYTES
        assert kept[:4] == ZSTD_MAGIC if framed else kept is value
    expanded, nbytes = Expander().values(list(stored))
    assert expanded == values and nbytes == sum(map(len, values))


def test_a_frame_that_does_not_expand_is_kept_as_it_is() -> None:
    corrupt = ZSTD_MAGIC + b"\x00" * 32
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"[" + b"x" * 5000 + b"]")
    bomb = _frame_claiming(MAX_EXPANDED_BYTES + 1)
    assert len(bomb) < 64 * 1024
    values = [corrupt, unsized, bomb, b'{"ok":1}']
    expanded, _ = Expander().values(values)
    assert expanded == values


def _frame_claiming(size: int) -> bytes:
    """A real zstd frame of a large run of '[' bytes, whose header states ``size``: zstd compresses a run
    to a few bytes, so the frame is small while its content size is huge."""
    return zstandard.ZstdCompressor(level=1).compress(b"[" * size)
