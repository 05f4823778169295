"""The NATS client's bulk parser, on bytes as the server sends them.

The parser runs inside a real (unconnected) ``DirectClient``: frames it does not take itself go through
nats-py's own parser and the client's routes, as on a live connection. The live path is covered by
test_jetstream.py against a real server.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from quills.streams.jetstream_client import DirectClient, _take_run

INBOX_SID, ROUTED_SID = 7, 9
ACK = b"$JS.ACK.Q_orders.g1"


class Box:
    """An ``Inbox`` that records what the client hands it."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.payloads: list[bytes] = []
        self.nbytes = 0
        self.statuses: list[bytes] = []
        self.arrivals = 0

    def arrived(self) -> None:
        self.arrivals += 1

    def status(self, subject: bytes, headers: bytes) -> None:
        self.statuses.append(headers.split(b"\r\n")[0])


class _Sub:
    def __init__(self, sid: int) -> None:
        self._id = sid


def client_with(box: Box, routed: list[tuple[bytes, bytes]]) -> DirectClient:
    nc = DirectClient()
    nc.collect(_Sub(INBOX_SID), box)  # type: ignore[arg-type]
    nc.route(_Sub(ROUTED_SID), lambda _s, reply, data, _h: routed.append((reply, data)))  # type: ignore[arg-type]
    return nc


def msg(sid: int, reply: bytes, payload: bytes) -> bytes:
    return b"MSG _INBOX.x.3 %d %s %d\r\n%s\r\n" % (sid, reply, len(payload), payload)


def hmsg(sid: int, headers: bytes, payload: bytes) -> bytes:
    size = len(headers) + len(payload)
    return b"HMSG _INBOX.x.3 %d %d %d\r\n%s%s\r\n" % (sid, len(headers), size, headers, payload)


def reply(i: int, delivered: int = 1) -> bytes:
    return b"%s.%d.%d.%d.1763794200123456789.%d" % (ACK, delivered, 100 + i, 500 + i, 9_000 - i)


# What the server may interleave with a pull request's messages, and what each should leave behind.
payloads = st.binary(max_size=40) | st.sampled_from([b"", b"a\r\nb", b"\r\n", b"MSG x 7 r 3\r\nabc", b"x\r"])
frames = st.lists(
    st.one_of(
        st.tuples(st.just("inbox"), payloads),
        st.tuples(st.just("routed"), payloads),
        st.tuples(st.just("status"), st.sampled_from([b"408 Request Timeout", b"409 Leadership Change"])),
        st.tuples(st.just("headers"), payloads),
        st.tuples(st.just("ok"), st.just(b"")),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(frames, st.lists(st.integers(1, 400), max_size=12), st.integers(0, 25))
def test_any_split_of_the_wire_gives_every_frame_to_its_owner_in_order(
    script: list[tuple[str, bytes]], cuts: list[int], clean: int
) -> None:
    # A run of plain inbox messages first, as while a request fills (the bulk path), then anything.
    script = [("inbox", b'{"n":%d}' % i) for i in range(clean)] + script
    wire, inbox, routed, statuses = [], [], [], []
    for i, (kind, body) in enumerate(script):
        if kind == "inbox":
            wire.append(msg(INBOX_SID, reply(i), body))
            inbox.append((reply(i), body))
        elif kind == "routed":
            wire.append(msg(ROUTED_SID, b"r%d" % i, body))
            routed.append((b"r%d" % i, body))
        elif kind == "status":
            wire.append(hmsg(INBOX_SID, b"NATS/1.0 " + body + b"\r\n\r\n", b""))
            statuses.append(b"NATS/1.0 " + body)
        elif kind == "headers":
            # A message with user headers: kept, headers dropped.
            wire.append(hmsg(INBOX_SID, b"NATS/1.0\r\nK: v\r\n\r\n", body))
            inbox.append((b"", body))
        else:
            wire.append(b"+OK\r\n")
    data = b"".join(wire)
    box, got_routed = Box(), []
    nc = client_with(box, got_routed)

    async def feed() -> None:
        start = 0
        for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
            await nc._ps.parse(data[start:cut])
            start = max(start, cut)

    asyncio.run(feed())
    assert list(zip(box.replies, box.payloads, strict=True)) == inbox
    assert box.nbytes == sum(len(p) for _, p in inbox)
    assert got_routed == routed
    assert box.statuses == statuses
    assert not nc._ps.buf


def test_a_read_of_whole_inbox_messages_is_taken_at_once_up_to_an_unfinished_one() -> None:
    box = Box()
    whole = b"".join(msg(INBOX_SID, reply(i), b'{"n":%d}' % i) for i in range(50))
    unfinished = msg(INBOX_SID, reply(50), b'{"n":50}')[:-3]
    taken, inbox = _take_run(whole + unfinished, {b"%d" % INBOX_SID: box})
    assert inbox is box
    assert taken == len(whole)
    assert box.payloads == [b'{"n":%d}' % i for i in range(50)]
    assert box.replies == [reply(i) for i in range(50)]


def test_a_read_with_a_payload_holding_crlf_is_left_whole_to_the_frame_path() -> None:
    box = Box()
    data = (
        msg(INBOX_SID, reply(0), b"ok") + msg(INBOX_SID, reply(1), b"a\r\nb") + msg(INBOX_SID, reply(2), b"c")
    )
    assert _take_run(data, {b"%d" % INBOX_SID: box}) == (0, None)
    assert box.payloads == [] and box.nbytes == 0


def test_a_large_message_arriving_in_small_reads_is_delivered_once_and_whole() -> None:
    box, routed = Box(), []
    nc = client_with(box, routed)
    big = bytes(range(256)) * 4_000  # ~1 MB, CR and LF included
    data = msg(INBOX_SID, reply(0), b"a") + msg(INBOX_SID, reply(1), big) + msg(INBOX_SID, reply(2), b"b")

    async def feed() -> None:
        for start in range(0, len(data), 4_096):
            await nc._ps.parse(data[start : start + 4_096])

    asyncio.run(feed())
    assert box.payloads == [b"a", big, b"b"]
    assert box.replies == [reply(0), reply(1), reply(2)]
    assert not nc._ps.buf
