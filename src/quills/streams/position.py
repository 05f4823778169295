"""Positions: what a batch covers, and the compare-and-set rules that let a sink store it exactly once.

A *claim* describes the messages of one batch in a backend's own terms. A sink stores positions as text
rows ``(group, key) -> value``; inside the sink's transaction the claim checks the stored rows and returns
the new ones, or raises ``StaleClaimError`` when another member got there first (a rebalance or a zombie
process), in which case the whole transaction, results included, is rolled back.

- Kafka: one key per partition (``<topic>/<partition>``), the value is the next offset to read. A batch
  commits only if the stored offset is still the one this member started from (compare-and-set), so two
  members can never both count the same offsets.
- NATS JetStream: one key per stream, the value is the set of stream sequences already stored, as merged
  ``[first, last]`` ranges. A batch commits only if none of its sequences is in the set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from quills.errors import StreamError

__all__ = ("Claim", "KafkaClaim", "NatsClaim", "StaleClaimError", "covered_upto")


class StaleClaimError(StreamError):
    """Another consumer already stored some of this batch's positions; the batch must not be stored."""


class Claim(Protocol):
    """The positions a batch covers, in the terms of its backend."""

    def keys(self) -> Sequence[str]:
        """The position keys this claim reads and writes."""
        ...

    def advance(self, stored: Mapping[str, str]) -> dict[str, str]:
        """New values for ``keys()`` given the stored ones; raises ``StaleClaimError`` on a conflict."""
        ...

    def done(self, stored: Mapping[str, str]) -> list[int]:
        """Indices (in the batch) of messages that ``stored`` says were already stored."""
        ...

    def without(self, indices: Sequence[int]) -> Claim:
        """The same claim minus the messages at ``indices``."""
        ...


class KafkaClaim:
    """Per partition: the offset the member expects to be stored (None: no row yet) and the next offset."""

    __slots__ = ("ranges", "topic")

    def __init__(self, topic: str, ranges: dict[int, tuple[int | None, int]]) -> None:
        self.topic = topic
        self.ranges = ranges

    def keys(self) -> list[str]:
        return [f"{self.topic}/{p}" for p in self.ranges]

    def advance(self, stored: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for partition, (expected, next_offset) in self.ranges.items():
            key = f"{self.topic}/{partition}"
            have = stored.get(key)
            if (None if have is None else int(have)) != expected:
                raise StaleClaimError(
                    f"{key}: stored position is {have}, this member expected {expected}; "
                    "another member stored this partition since"
                )
            out[key] = str(next_offset)
        return out

    def done(self, stored: Mapping[str, str]) -> list[int]:
        # A Kafka member seeks to the stored offset, so it never reads what is already stored.
        return []

    def without(self, indices: Sequence[int]) -> KafkaClaim:
        return self


_RANGES = msgspec.json.Decoder(list[tuple[int, int]])
_ENCODE = msgspec.json.encode


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent inclusive ``(first, last)`` ranges."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def ranges_of(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Inclusive ranges covering ``seqs`` (any order, no duplicates expected)."""
    if not seqs:
        return []
    first, last = seqs[0], seqs[-1]
    # The usual batch: one run of consecutive sequences, checked at C speed.
    if last - first == len(seqs) - 1 and list(seqs) == list(range(first, last + 1)):
        return [(first, last)]
    return merge_ranges([(s, s) for s in seqs])


def _contains(ranges: list[tuple[int, int]], seq: int) -> bool:
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        if ranges[mid][1] < seq:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(ranges) and ranges[lo][0] <= seq


class NatsClaim:
    """The stream sequences of a batch; stored as merged ranges under the key ``<stream>``."""

    __slots__ = ("key", "seqs")

    def __init__(self, stream: str, seqs: list[int]) -> None:
        self.key = stream
        self.seqs = seqs

    def keys(self) -> list[str]:
        return [self.key]

    def advance(self, stored: Mapping[str, str]) -> dict[str, str]:
        have = _RANGES.decode(stored[self.key]) if self.key in stored else []
        mine = ranges_of(self.seqs)
        for first, last in mine:
            # Both lists are sorted and merged, so overlap shows as a stored range touching [first, last].
            for s_first, s_last in have:
                if s_first <= last and first <= s_last:
                    raise StaleClaimError(
                        f"{self.key}: sequences {max(first, s_first)}-{min(last, s_last)} were already "
                        "stored by another member"
                    )
        return {self.key: _ENCODE(merge_ranges(have + mine)).decode()}

    def done(self, stored: Mapping[str, str]) -> list[int]:
        if self.key not in stored:
            return []
        have = merge_ranges(_RANGES.decode(stored[self.key]))
        return [i for i, s in enumerate(self.seqs) if _contains(have, s)]

    def without(self, indices: Sequence[int]) -> NatsClaim:
        drop = set(indices)
        return NatsClaim(self.key, [s for i, s in enumerate(self.seqs) if i not in drop])


def covered_upto(stored: str | None, first: int) -> int:
    """The last position up to which a stored position value covers everything from ``first`` on.

    ``stored`` is what a sink holds for one key: a Kafka next offset (``"1200"``: offsets up to 1199 are
    stored) or NATS merged sequence ranges (``"[[1,40000],[40101,52000]]"``: contiguous up to 40000 from
    1). ``first - 1`` when nothing from ``first`` on is stored. Compare with ``Backbone.log_bounds``.
    """
    if not stored:
        return first - 1
    if stored[0] != "[":
        return int(stored) - 1
    upto = first - 1
    for lo, hi in merge_ranges(_RANGES.decode(stored)):
        if lo > upto + 1:
            break
        upto = max(upto, hi)
    return upto
