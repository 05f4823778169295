"""Distinct devices as mergeable sketches: an exact list of device hashes while small, a HyperLogLog after.

Every device is counted by its 64-bit hash (``device_digest``: XXH3-64 of the id, big-endian; no device
id is stored in the reports). An aggregate row keeps two blobs:

- ``sparse``: 8-byte digests appended as they arrive (duplicates allowed, dropped when compacted). While
  a row has no dense part its count is exact (up to 64-bit hash collisions, negligible below billions);
- ``dense``: HyperLogLog registers, ``P`` = 12 (4,096 one-byte registers, standard error
  1.04 / sqrt(4096) = 1.6 %), used once a row has seen more than ``EXACT_LIMIT`` devices.

Both merge: sparse lists by set union, registers by per-register maximum. ``DeviceUnion`` adds up the
blobs of every row of a report group and answers exactly when no row (and not the union itself) went
past the exact limits, else with the HyperLogLog estimate (Ertl's improved raw estimator, "New
cardinality estimation algorithms for HyperLogLog sketches", 2017: no bias tables, no range switch).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable

import xxhash

__all__ = (
    "P",
    "REGISTERS",
    "EXACT_LIMIT",
    "UNION_EXACT_LIMIT",
    "DIGEST_SIZE",
    "device_digest",
    "device_digests",
    "digests",
    "add_to_registers",
    "merge_registers",
    "estimate",
    "compact",
    "DeviceUnion",
)

P = 12
"""HyperLogLog precision: 2**P registers."""
REGISTERS = 1 << P
Q = 64 - P  # hash bits left after the register index
EXACT_LIMIT = 256
"""A row keeps exact digests up to this many distinct devices, then turns dense."""
UNION_EXACT_LIMIT = 1_000_000
"""A report group counts exactly up to this many distinct devices (about 60 MB of Python ints)."""
DIGEST_SIZE = 8

_xxh3 = xxhash.xxh3_64_digest
_LANE_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")
_ALPHA_INF = 1 / (2 * math.log(2))


def device_digest(device_id: str) -> bytes:
    """The 8-byte hash a device is counted by (XXH3-64: a tenth of BLAKE2b's cost, and HyperLogLog
    needs well-mixed bits, not a cryptographic hash)."""
    return _xxh3(device_id.encode())


def device_digests(device_ids: Iterable[str]) -> bytes:
    """The digests of ``device_ids``, concatenated (the loop runs in C)."""
    return b"".join(map(_xxh3, map(str.encode, device_ids)))


def digests(sparse: bytes) -> array[int]:
    """The hashes in a sparse blob, as unsigned 64-bit ints (big-endian reading of each digest)."""
    out = array("Q")
    out.frombytes(sparse)
    if sys.byteorder == "little":
        out.byteswap()
    return out


def add_to_registers(registers: bytearray, hashes: Iterable[int]) -> None:
    """Add 64-bit hashes to HyperLogLog ``registers`` in place."""
    mask = (1 << Q) - 1
    for h in hashes:
        index = h >> Q
        rho = Q + 1 - (h & mask).bit_length()
        if rho > registers[index]:
            registers[index] = rho


def merge_registers(a: bytes | bytearray, b: bytes | bytearray) -> bytes:
    """Per-register maximum of two register arrays.

    Registers hold at most ``Q + 1`` = 53 < 128, so with every byte of ``a`` lifted by 128 the byte-wise
    differences ``a - b`` never borrow across bytes; bit 7 of each byte then says ``a >= b``. One pass of
    big-integer arithmetic instead of 4,096 Python-level comparisons.
    """
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    a_ge_b = (((x | _LANE_HIGH) - y) & _LANE_HIGH) >> 7
    return (y ^ ((x ^ y) & (a_ge_b * 0xFF))).to_bytes(REGISTERS, "little")


def estimate(registers: bytes | bytearray) -> float:
    """Ertl's improved raw estimate of the distinct hashes added to ``registers``."""
    m = REGISTERS
    counts = [registers.count(k) for k in range(Q + 2)]
    z = m * _tau(1 - counts[Q + 1] / m)
    for k in range(Q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * _sigma(counts[0] / m)
    return _ALPHA_INF * m * m / z


def _sigma(x: float) -> float:
    if x == 1:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0, 1):
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if z == previous:
            return z / 3


def compact(sparse: bytes, dense: bytes | None) -> tuple[bytes, bytes | None]:
    """A row's blobs with duplicate digests dropped; past ``EXACT_LIMIT`` devices (or once dense) the
    digests go into the registers and the sparse list is emptied."""
    hashes = set(digests(sparse))
    if dense is None and len(hashes) <= EXACT_LIMIT:
        return _pack(hashes), None
    registers = bytearray(dense) if dense else bytearray(REGISTERS)
    add_to_registers(registers, hashes)
    return b"", bytes(registers)


def _pack(hashes: Iterable[int]) -> bytes:
    out = array("Q", sorted(hashes))
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


class DeviceUnion:
    """The distinct devices of a group of rows: feed it each row's blobs, then ``count()``."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: set[int] = set()
        self._registers: bytes | None = None

    def add(self, sparse: bytes | None, dense: bytes | None) -> None:
        """Add one row's ``sparse`` digests and ``dense`` registers (either may be empty or None)."""
        if dense:
            self._registers = dense if self._registers is None else merge_registers(self._registers, dense)
        if sparse:
            self._exact.update(digests(sparse))
            if len(self._exact) > UNION_EXACT_LIMIT:
                self._spill()

    def _spill(self) -> None:
        registers = bytearray(self._registers or bytes(REGISTERS))
        add_to_registers(registers, self._exact)
        self._registers = bytes(registers)
        self._exact = set()

    def is_exact(self) -> bool:
        """Whether ``count()`` is exact (no dense registers were involved)."""
        return self._registers is None

    def count(self) -> int:
        """The number of distinct devices: exact, or the HyperLogLog estimate rounded."""
        if self._registers is None:
            return len(self._exact)
        registers = bytearray(self._registers)
        add_to_registers(registers, self._exact)
        return round(estimate(registers))
