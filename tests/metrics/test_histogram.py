"""The latency histogram: every value lands in a bucket whose midpoint is within 0.8 % of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quills.metrics import histogram


@given(st.integers(min_value=0, max_value=histogram.MAX_US))
def test_bucket_midpoint_is_within_one_percent_of_the_value(value: int) -> None:
    index = histogram.index_of(value)
    assert 0 <= index < histogram.SIZE
    midpoint = histogram.value_of(index)
    assert abs(midpoint - value) <= max(0.5, value / 128)


@given(st.integers(min_value=0, max_value=histogram.MAX_US - 1))
def test_indexes_never_decrease_as_values_grow(value: int) -> None:
    assert histogram.index_of(value) <= histogram.index_of(value + 1)


def test_values_beyond_the_range_are_clamped_to_the_last_bucket() -> None:
    assert histogram.index_of(10**12) == histogram.SIZE - 1
    assert histogram.index_of(-5) == 0


@given(st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=400))
def test_percentiles_match_nearest_rank_within_resolution(values: list[int]) -> None:
    counts = [0] * histogram.SIZE
    for value in values:
        counts[histogram.index_of(value)] += 1
    ordered = sorted(values)
    for q, got in zip((0, 50, 90, 99, 100), histogram.percentiles(counts, (0, 50, 90, 99, 100)), strict=True):
        rank = max(1, -(-q * len(ordered) // 100))
        expected = ordered[rank - 1]
        assert abs(got - expected) <= max(0.5, expected / 128), (q, got, expected)


def test_empty_histogram_reports_zero() -> None:
    counts = [0] * histogram.SIZE
    assert histogram.percentiles(counts, (50, 99)) == [0.0, 0.0]
    assert histogram.mean_of(counts) == 0.0


def test_sparse_histograms_merge_by_adding_counts() -> None:
    a = [0] * histogram.SIZE
    b = [0] * histogram.SIZE
    a[histogram.index_of(100)] += 3
    b[histogram.index_of(100)] += 2
    b[histogram.index_of(5000)] += 1
    merged = [0] * histogram.SIZE
    histogram.add_sparse(merged, histogram.sparse(a))
    histogram.add_sparse(merged, histogram.sparse(b))
    assert sum(merged) == 6
    assert merged[histogram.index_of(100)] == 5
