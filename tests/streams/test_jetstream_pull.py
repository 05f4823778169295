"""The pull loop's parsing of ack subjects (the live loop is covered by test_jetstream.py)."""

from __future__ import annotations

from quills.streams.jetstream_pull import ack_positions, request_bytes

ACK = b"$JS.ACK.Q_orders.g1"


def reply(i: int, delivered: int = 1) -> bytes:
    return b"%s.%d.%d.%d.1763794200123456789.%d" % (ACK, delivered, 100 + i, 500 + i, 9_000 - i)


def test_ack_subjects_give_stream_sequences_pending_and_redelivery() -> None:
    fresh = [reply(i) for i in range(5)]
    assert ack_positions(fresh) == ([100, 101, 102, 103, 104], False, 8_996)
    again = [reply(0), reply(1, delivered=3), reply(2)]
    assert ack_positions(again) == ([100, 101, 102], True, 8_998)
    # A delivery count that only starts with 1 is a redelivery too.
    eleventh = [reply(0), reply(1, delivered=11)]
    assert ack_positions(eleventh) == ([100, 101], True, 8_999)


def test_ack_subjects_in_the_form_with_domain_and_account_hash() -> None:
    subjects = [
        b"$JS.ACK.hub.ACCHASH.Q_orders.g1.%d.%d.%d.17637.%d.tok%d" % (d, s, s, 40 - s, s)
        for d, s in [(1, 3), (1, 4), (2, 6)]
    ]
    assert ack_positions(subjects) == ([3, 4, 6], True, 34)
    assert ack_positions(subjects[:2]) == ([3, 4], False, 36)


def test_a_pull_request_asks_for_the_byte_bound_shrunk_by_the_expansion_ratio_but_never_under_1_mib() -> None:
    mib = 1 << 20
    assert request_bytes(64 * mib, 1.0) == 64 * mib
    assert request_bytes(64 * mib, 10.0) == 64 * mib // 10  # compressed packs: ~64 MiB once expanded
    assert request_bytes(4 * mib, 10.0) == mib  # the floor: any message up to max_payload fits alone
    assert request_bytes(64 * 1024, 10.0) == 64 * 1024  # a small bound is never raised
    assert request_bytes(8 * mib, 0.5) == 8 * mib  # a ratio below 1 (not compressed) never grows it
