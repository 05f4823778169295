"""Log-bucketed latency histogram: constant-time recording, mergeable, <= 0.8 % relative error.

A latency in microseconds ``v`` maps to a bucket index: values below 128 are exact; above, each power of two
is split into 64 equal sub-buckets (HdrHistogram's idea with 6 significant bits). A bucket is reported by
its midpoint, so any reported percentile is within 1/128 (0.78 %) of a value that was recorded. The index
range is fixed (``SIZE`` buckets cover 0 µs .. 2**27 µs, about 134 s; longer values are clamped), which is
what makes histograms from different processes mergeable by adding counts index by index.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress

__all__ = (
    "SIZE",
    "MAX_US",
    "index_of",
    "value_of",
    "percentiles",
    "mean_of",
    "sparse",
    "add_sparse",
    "Compact",
    "compact",
    "add_compact",
    "add_dense",
    "sparse_percentiles",
    "sparse_mean",
)

_SUB_BITS = 6
_EXACT = 1 << (_SUB_BITS + 1)  # 128: below this every microsecond has its own bucket
MAX_US = (1 << 27) - 1
SIZE = ((27 - _SUB_BITS - 1) << _SUB_BITS) + _EXACT  # index of MAX_US + 1


def index_of(us: int) -> int:
    """The bucket index of a latency of ``us`` microseconds (negative values count as 0)."""
    if us < _EXACT:
        return us if us > 0 else 0
    if us > MAX_US:
        us = MAX_US
    shift = us.bit_length() - _SUB_BITS - 1
    return (shift << _SUB_BITS) + (us >> shift)


def value_of(index: int) -> float:
    """The midpoint, in microseconds, of the values that map to ``index``."""
    if index < _EXACT:
        return float(index)
    shift = (index >> _SUB_BITS) - 1
    low = (index - (shift << _SUB_BITS)) << shift
    return low + ((1 << shift) - 1) / 2


def percentiles(counts: Sequence[int], quantiles: Iterable[float]) -> list[float]:
    """Values (µs) at each quantile in 0..100 of a dense histogram; all 0.0 when it is empty.

    ``quantiles`` must be sorted ascending. Uses the nearest-rank definition (the smallest recorded value
    with at least q % of the values at or below it), as HdrHistogram does.
    """
    total = sum(counts)
    qs = list(quantiles)
    if total == 0:
        return [0.0] * len(qs)
    out: list[float] = []
    seen = 0
    index = -1
    for q in qs:
        # rank of the q-th percentile, at least 1 (so q=0 gives the smallest value)
        rank = max(1, -(-q * total // 100))
        while seen < rank:
            index += 1
            seen += counts[index]
        out.append(value_of(index))
    return out


def mean_of(counts: Sequence[int]) -> float:
    """The mean (µs) of a dense histogram, from bucket midpoints; 0.0 when empty."""
    total = 0
    weighted = 0.0
    for index, count in enumerate(counts):
        if count:
            total += count
            weighted += count * value_of(index)
    return weighted / total if total else 0.0


def sparse(counts: Sequence[int]) -> dict[int, int]:
    """The non-zero buckets of a dense histogram (how old windows are kept: small and mergeable)."""
    return {index: count for index, count in enumerate(counts) if count}


def add_sparse(into: list[int], buckets: dict[int, int]) -> None:
    """Add a sparse histogram into a dense one."""
    for index, count in buckets.items():
        into[index] += count


#: a histogram kept small: the indexes of its non-zero buckets (2 bytes each) and their counts (4 bytes)
Compact = tuple[array, array]  # type: ignore[type-arg]


def compact(counts: Sequence[int]) -> Compact:
    """A dense histogram as two parallel arrays of its non-zero buckets (6 bytes per bucket in use).

    This is how closed percentile buckets are kept: a dict of the same buckets costs ~10x the memory.
    """
    indexes = array("H", [index for index, count in enumerate(counts) if count])
    return indexes, array("I", [counts[index] for index in indexes])


def add_compact(into: list[int], kept: Compact) -> None:
    """Add a compact histogram into a dense one."""
    for index, count in zip(*kept, strict=True):
        into[index] += count


def add_dense(into: dict[int, int], counts: Sequence[int]) -> None:
    """Add a dense histogram into a sparse one, visiting only non-zero buckets (found in C)."""
    for index in compress(range(len(counts)), counts):
        into[index] = into.get(index, 0) + counts[index]


def sparse_percentiles(buckets: Mapping[int, int], quantiles: Iterable[float]) -> list[float]:
    """:func:`percentiles` of a sparse histogram: costs the buckets in use, not the histogram's size."""
    items = sorted(buckets.items())
    total = sum(count for _, count in items)
    qs = list(quantiles)
    if total == 0:
        return [0.0] * len(qs)
    out: list[float] = []
    seen = 0
    position = -1
    for q in qs:
        rank = max(1, -(-q * total // 100))
        while seen < rank:
            position += 1
            seen += items[position][1]
        out.append(_VALUES[items[position][0]])
    return out


def sparse_mean(buckets: Mapping[int, int]) -> float:
    """:func:`mean_of` of a sparse histogram."""
    total = sum(buckets.values())
    values = _VALUES
    return sum(count * values[index] for index, count in buckets.items()) / total if total else 0.0


#: every bucket's midpoint, computed once
_VALUES = [value_of(index) for index in range(SIZE)]
