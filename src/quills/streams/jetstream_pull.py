"""The NATS consumer side: the hand-written JetStream pull loop over the backbone's ``DirectClient``.

``$JS.API.CONSUMER.MSG.NEXT`` requests go to a private inbox that the client fills in bulk
(``DirectClient.collect``), one request kept ahead of the handler; acks go out in one write per batch.
See ``quills.streams.jetstream`` for why and for the semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import re
from typing import Any

import msgspec
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from quills.streams.backbone import Fetched
from quills.streams.compression import Expander
from quills.streams.jetstream_client import DirectClient, never_called
from quills.streams.options import ConsumerOptions
from quills.streams.position import NatsClaim

__all__ = ("NatsSource", "stream_name", "request_bytes")


def stream_name(subject: str) -> str:
    """The JetStream stream that holds topic ``subject``: ``Q_`` + the subject with ``.`` as ``_``."""
    return "Q_" + subject.replace(".", "_")


def _deliver_policy(options: ConsumerOptions) -> dict[str, Any]:
    start = options.start
    if start.kind == "latest":
        return {"deliver_policy": DeliverPolicy.NEW}
    if start.kind == "offset":
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": max(1, int(start.value))}
    if start.kind == "time":
        when = dt.datetime.fromtimestamp(start.value, tz=dt.UTC).isoformat().replace("+00:00", "Z")
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": when}
    return {"deliver_policy": DeliverPolicy.ALL}


class NatsSource:
    """A process of a group: pulls batches from the group's durable consumer into a private inbox.

    The client appends what arrives to ``replies``, ``payloads`` and ``nbytes`` (the ``Inbox`` protocol);
    ``fetch`` takes them once the request kept ahead is over.
    """

    def __init__(self, nc: DirectClient, subject: str, options: ConsumerOptions) -> None:
        self._nc = nc
        self.subject = subject
        self.stream = stream_name(subject)
        self.options = options
        self._inbox = nc.new_inbox().encode()
        self._next_api = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{options.group}".encode()
        self._sub: Subscription | None = None
        self._req_ids = itertools.count()
        self._current = b""
        self.replies: list[bytes] = []
        self.payloads: list[bytes] = []
        self.nbytes = 0
        self._done = asyncio.Event()
        self._pending: int | None = None
        self._expander = Expander()
        # Stored bytes per fetched byte once expanded (packs stored as zstd frames are ~10x smaller):
        # a request asks for max_batch_bytes / ratio stored bytes, so a batch holds about
        # max_batch_bytes once expanded, as it does without compression.
        self._ratio = 1.0
        self._request = self._request_body()

    async def start(self, js: Any) -> None:
        options = self.options
        try:
            await js.consumer_info(self.stream, options.group)
        except NotFoundError:
            await js.add_consumer(
                self.stream,
                ConsumerConfig(
                    durable_name=options.group,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=options.session_timeout,
                    max_ack_pending=max(100_000, 4 * options.max_batch_size),
                    max_waiting=512,
                    filter_subject=self.subject,
                    **_deliver_policy(options),
                ),
            )
        self._sub = await self._nc.subscribe(self._inbox.decode() + ".*", cb=never_called)
        self._nc.collect(self._sub, self)
        await self._send_request()

    def _request_body(self) -> bytes:
        options = self.options
        return msgspec.json.encode(
            {
                "batch": options.max_batch_size,
                "max_bytes": request_bytes(options.max_batch_bytes, self._ratio),
                "expires": int(options.max_wait * 1e9),
            }
        )

    async def _send_request(self) -> None:
        # No PING/PONG after it: a request lost on the way is noticed by fetch()'s timeout and sent again.
        self._current = b"%s.%d" % (self._inbox, next(self._req_ids))
        self._done.clear()
        body = self._request
        await self._nc.send_raw(b"PUB %s %s %d\r\n%s\r\n" % (self._next_api, self._current, len(body), body))

    def arrived(self) -> None:
        if len(self.payloads) >= self.options.max_batch_size or self.nbytes >= self.options.max_batch_bytes:
            self._done.set()

    def status(self, subject: bytes, headers: bytes) -> None:
        # 408 expired, 404 no messages, 409 limits: the request is over.
        if subject == self._current:
            self._done.set()

    async def fetch(self) -> Fetched | None:
        try:
            await asyncio.wait_for(self._done.wait(), self.options.max_wait + 5.0)
        except TimeoutError:
            pass  # a lost request (server restart): ask again
        replies, values, stored = self.replies, self.payloads, self.nbytes
        self.replies, self.payloads, self.nbytes = [], [], 0
        values, nbytes = self._expander.values(values)
        if values and nbytes != stored:
            ratio = nbytes / stored
            if not 0.8 < ratio / self._ratio < 1.25:
                self._ratio = ratio
                self._request = self._request_body()
        # Ask for the next batch before handing this one over, so the broker fills it meanwhile.
        await self._send_request()
        if not values:
            return None
        seqs, redelivered, self._pending = ack_positions(replies)
        return Fetched(
            values=values,
            locate=lambda i: (0, seqs[i]),
            claim=NatsClaim(self.stream, seqs),
            nbytes=nbytes,
            has_redeliveries=redelivered,
            token=replies,
        )

    async def ack(self, fetched: Fetched) -> None:
        # An empty payload is an ack (ADR-15): 4 bytes less per message for the server to read.
        await self._nc.reply_all(fetched.token, b"")

    async def reject(self, fetched: Fetched) -> None:
        await self._nc.reply_all(fetched.token, b"-NAK")

    def lag(self) -> int | None:
        return self._pending

    async def close(self) -> None:
        if self._sub is None:
            return
        # Let the request kept ahead of the handler end (it expires after max_wait), then hand what it
        # brought back at once, so the group's next reader gets it now and in order, not after ack_wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), self.options.max_wait + 1.0)
        replies, self.replies, self.payloads, self.nbytes = self.replies, [], [], 0
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await self._nc.reply_all(replies, b"-NAK")
            await self._nc.flush()
        self._nc.unroute(self._sub)
        await self._sub.unsubscribe()
        self._sub = None


def request_bytes(max_batch_bytes: int, ratio: float) -> int:
    """The stored bytes a pull request asks for, so that the batch holds about ``max_batch_bytes`` once
    expanded ``ratio`` times (compressed packs); never under ``max_batch_bytes`` or 1 MiB, whichever is
    smaller (NATS's default ``max_payload``): a request that cannot take the next message alone ends
    without it, and the consumer would ask for that message forever."""
    return max(min(max_batch_bytes, 1 << 20), int(max_batch_bytes / max(ratio, 1.0)))


def ack_positions(replies: list[bytes]) -> tuple[list[int], bool, int]:
    """From a batch's ack subjects: the stream sequences, whether any was delivered before, and how many
    messages the consumer had left after the last one.

    An ack subject is ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``
    or the 12-token form with domain and account hash after ``$JS.ACK.`` and a token at the end; a batch's
    subjects share everything before ``<delivered>``. Usually every message is a first delivery, and one
    regular expression over the joined subjects finds each stream sequence without a Python step per
    message; otherwise each subject is split.
    """
    last = replies[-1].split(b".")
    lead = 4 if len(last) == 9 else 6  # tokens before <delivered>
    pending = int(last[lead + 4])
    found = _first_deliveries(b".".join(last[:lead])).findall(b" ".join(replies))
    if len(found) == len(replies):
        return _decode_ints(b"[" + b",".join(found) + b"]"), False, pending
    seqs: list[int] = []
    redelivered = False
    for reply in replies:
        t = reply.split(b".")
        at = 4 if len(t) == 9 else 6
        seqs.append(int(t[at + 1]))
        redelivered = redelivered or t[at] != b"1"
    return seqs, redelivered, pending


@functools.lru_cache(maxsize=64)
def _first_deliveries(prefix: bytes) -> re.Pattern[bytes]:
    """Matches the stream sequence of each ack subject under ``prefix`` delivered once."""
    return re.compile(re.escape(prefix) + rb"\.1\.(\d+)\.")


_decode_ints = msgspec.json.Decoder(list[int]).decode
