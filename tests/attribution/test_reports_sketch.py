"""Distinct-device sketches: exact while small, HyperLogLog within its error after, and mergeable."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from quills.attribution.reports.sketch import (
    EXACT_LIMIT,
    REGISTERS,
    DeviceUnion,
    add_to_registers,
    compact,
    device_digests,
    digests,
    estimate,
    merge_registers,
)

# 1.04 / sqrt(4096) = 1.6 % standard error; the seeded cases below stay inside 3 standard errors
HLL_BOUND = 3 * 1.04 / REGISTERS**0.5


def ids(n: int, start: int = 0) -> list[str]:
    return [f"device-{i}" for i in range(start, start + n)]


def test_a_union_of_small_rows_counts_exactly_and_ignores_duplicates() -> None:
    union = DeviceUnion()
    union.add(device_digests(ids(100)), None)
    union.add(device_digests(ids(100, start=50)), None)
    union.add(device_digests(ids(10)) * 3, None)  # appended again and again before compaction
    assert union.is_exact() and union.count() == 150


def test_compaction_keeps_small_rows_exact_and_turns_big_ones_into_registers() -> None:
    sparse, dense = compact(device_digests(ids(EXACT_LIMIT)) * 2, None)
    assert dense is None and len(digests(sparse)) == EXACT_LIMIT
    sparse, dense = compact(device_digests(ids(EXACT_LIMIT + 1)), None)
    assert sparse == b"" and dense is not None and len(dense) == REGISTERS
    # once dense, later digests go into the same registers
    sparse, dense = compact(device_digests(ids(5000, start=EXACT_LIMIT + 1)), dense)
    union = DeviceUnion()
    union.add(sparse, dense)
    assert not union.is_exact()
    assert abs(union.count() / (5000 + EXACT_LIMIT + 1) - 1) < HLL_BOUND


def test_estimates_stay_within_three_standard_errors() -> None:
    rng = random.Random(7)
    for n in (300, 1_000, 10_000, 100_000):
        registers = bytearray(REGISTERS)
        add_to_registers(registers, (rng.getrandbits(64) for _ in range(n)))
        assert abs(estimate(registers) / n - 1) < HLL_BOUND, n
    assert estimate(bytes(REGISTERS)) == 0


def test_a_union_of_dense_and_sparse_rows_counts_each_device_once() -> None:
    union = DeviceUnion()
    for part in range(4):  # four rows, each dense, overlapping by half
        _, dense = compact(device_digests(ids(20_000, start=part * 10_000)), None)
        union.add(b"", dense)
    union.add(device_digests(ids(100, start=45_000)), None)  # already counted
    assert abs(union.count() / 50_000 - 1) < HLL_BOUND


REGISTER_VALUES = st.binary(min_size=REGISTERS, max_size=REGISTERS).map(lambda b: bytes(x % 54 for x in b))


@given(REGISTER_VALUES, REGISTER_VALUES)
def test_merging_registers_takes_the_larger_of_each(a: bytes, b: bytes) -> None:
    assert merge_registers(a, b) == bytes(map(max, a, b))
