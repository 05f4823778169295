"""Claims: the compare-and-set rules that make a sink store each message once."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quills.streams import KafkaClaim, NatsClaim, StaleClaimError, covered_upto
from quills.streams.position import merge_ranges, ranges_of


def test_kafka_claim_advances_only_from_the_expected_offset() -> None:
    claim = KafkaClaim("t", {0: (None, 10), 3: (5, 9)})
    assert claim.advance({"t/3": "5"}) == {"t/0": "10", "t/3": "9"}
    with pytest.raises(StaleClaimError, match="t/3"):
        claim.advance({"t/3": "7"})
    with pytest.raises(StaleClaimError, match="t/0"):
        claim.advance({"t/0": "0", "t/3": "5"})


def test_nats_claim_refuses_sequences_already_stored_and_merges_the_rest() -> None:
    claim = NatsClaim("S", [5, 6, 7, 9])
    assert claim.advance({"S": "[[1,4]]"}) == {"S": "[[1,7],[9,9]]"}
    with pytest.raises(StaleClaimError, match="7-7"):
        claim.advance({"S": "[[7,8]]"})


def test_nats_claim_finds_and_drops_messages_already_stored() -> None:
    claim = NatsClaim("S", [3, 10, 4, 20])
    assert claim.done({"S": "[[1,4],[15,30]]"}) == [0, 2, 3]
    rest = claim.without([0, 2, 3])
    assert rest.seqs == [10]
    assert rest.advance({"S": "[[1,4],[15,30]]"}) == {"S": "[[1,4],[10,10],[15,30]]"}


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20))))
def test_merged_ranges_cover_exactly_the_union_and_are_disjoint(spans: list[tuple[int, int]]) -> None:
    ranges = [(a, a + n) for a, n in spans]
    merged = merge_ranges(ranges)
    covered = {x for a, b in ranges for x in range(a, b + 1)}
    assert {x for a, b in merged for x in range(a, b + 1)} == covered
    assert all(merged[i][1] + 1 < merged[i + 1][0] for i in range(len(merged) - 1))


@given(st.sets(st.integers(1, 500)))
def test_ranges_of_sequences_round_trip(seqs: set[int]) -> None:
    assert {x for a, b in ranges_of(sorted(seqs)) for x in range(a, b + 1)} == seqs


@given(st.lists(st.tuples(st.integers(1, 200), st.integers(0, 20)), max_size=20), st.integers(1, 50))
def test_covered_upto_is_the_end_of_the_contiguous_prefix(spans: list[tuple[int, int]], first: int) -> None:
    ranges = [(lo, lo + n) for lo, n in spans]
    stored = msgspec.json.encode(ranges).decode()
    seqs = {s for lo, hi in ranges for s in range(lo, hi + 1)}
    expected = first - 1
    while expected + 1 in seqs:
        expected += 1
    assert covered_upto(stored, first) == expected


def test_covered_upto_reads_a_kafka_next_offset_and_nothing_stored() -> None:
    assert covered_upto("1200", 0) == 1199
    assert covered_upto(None, 5) == 4
    assert covered_upto("", 1) == 0


@given(st.integers(1, 1_000), st.integers(1, 60), st.randoms(use_true_random=False), st.booleans())
def test_ranges_of_a_run_in_any_order_is_its_span_and_a_gap_is_kept(
    first: int, n: int, rng: random.Random, shuffle: bool
) -> None:
    # A batch is usually one run of consecutive sequences (the shortcut); a reordered or gapped one is not.
    seqs = list(range(first, first + n))
    if shuffle:
        rng.shuffle(seqs)
    assert ranges_of(seqs) == [(first, first + n - 1)]
    if n > 2:
        gapped = [s for s in seqs if s != first + n // 2] + [first + n]
        assert ranges_of(gapped) == [(first, first + n // 2 - 1), (first + n // 2 + 1, first + n)]
