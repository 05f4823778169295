"""Packing encoded messages into log messages (pure logic; the consumer side is in test_consumer)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quills.errors import ConfigError
from quills.streams import pack, pack_keyed

decode_list = msgspec.json.Decoder(list[dict[str, object]]).decode


def values_of(ns: list[int]) -> list[bytes]:
    return [msgspec.json.encode({"n": n, "pad": "x" * (n % 50)}) for n in ns]


@given(
    st.lists(st.integers(0, 10_000), max_size=300),
    st.integers(min_value=2, max_value=2_000),
    st.integers(min_value=1, max_value=50),
)
def test_packed_messages_hold_every_message_once_in_order_within_the_limits(
    ns: list[int], max_bytes: int, max_count: int
) -> None:
    values = values_of(ns)
    packed = pack(values, max_bytes=max_bytes, max_count=max_count)
    unpacked = [m for p in packed for m in decode_list(p)]
    assert unpacked == [msgspec.json.decode(v) for v in values]
    for p in packed:
        n = len(decode_list(p))
        assert 1 <= n <= max_count
        # Only a message too large on its own may make a pack exceed max_bytes, and then it is alone.
        assert len(p) <= max_bytes or n == 1


def test_a_pack_is_cut_exactly_at_max_bytes() -> None:
    values = [b'{"a":1}'] * 4  # 7 bytes each: [v,v] is 1 + 7 + 1 + 7 + 1 = 17 bytes
    assert pack(values, max_bytes=17) == [b'[{"a":1},{"a":1}]'] * 2
    assert pack(values, max_bytes=16) == [b'[{"a":1}]'] * 4
    assert pack([]) == []


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", None]), st.integers(0, 1000)), max_size=200))
def test_pack_keyed_keeps_each_keys_order_and_never_mixes_keys(items: list[tuple[bytes | None, int]]) -> None:
    keys = [k for k, _ in items]
    values = values_of([n for _, n in items])
    packed, packed_keys = pack_keyed(values, keys, max_count=7)
    assert len(packed) == len(packed_keys)
    per_key: dict[bytes | None, list[int]] = {}
    for p, k in zip(packed, packed_keys, strict=True):
        per_key.setdefault(k, []).extend(m["n"] for m in decode_list(p))
    expected: dict[bytes | None, list[int]] = {}
    for k, n in items:
        expected.setdefault(k, []).append(n)
    assert per_key == expected


def test_bad_limits_and_mismatched_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        pack([b"{}"], max_bytes=1)
    with pytest.raises(ConfigError, match="max_count"):
        pack([b"{}"], max_count=0)
    with pytest.raises(ConfigError, match="2 values but 1 keys"):
        pack_keyed([b"{}", b"{}"], [None])
