"""The NATS consumer side: a private nats-py connection and the hand-written JetStream pull loop.

``$JS.API.CONSUMER.MSG.NEXT`` requests go to a private inbox, one request kept ahead of the handler;
acks go out in one write per batch. See ``quills.streams.jetstream`` for why and for the semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from quills.streams.backbone import Fetched
from quills.streams.options import ConsumerOptions
from quills.streams.position import NatsClaim

__all__ = ("NatsSource", "DirectClient", "open_client", "reachable", "stream_name")


def stream_name(subject: str) -> str:
    """The JetStream stream that holds topic ``subject``: ``Q_`` + the subject with ``.`` as ``_``."""
    return "Q_" + subject.replace(".", "_")


class DirectClient(Client):
    """A nats-py client with a direct delivery path for the pull loop's and the publisher's inboxes.

    nats-py turns every delivered message into a ``Msg``, parses its headers in Python, queues it and
    wakes a task to run a callback: ~10 us a message, several times the rest of the consumer's work. A
    subscription ``route``d here skips all of that: the raw subject, reply, payload and header bytes go
    straight to a plain function. Other subscriptions (the JetStream API) take nats-py's normal path.
    This connection is private to the backbone; ``nats-py`` is pinned below 3 for these internals.
    """

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[int, Callable[[bytes, bytes, bytes, bytes | None], None]] = {}

    def route(self, sub: Subscription, deliver: Callable[[bytes, bytes, bytes, bytes | None], None]) -> None:
        """Send ``sub``'s messages to ``deliver(subject, reply, payload, headers)`` directly."""
        self._routes[sub._id] = deliver

    def unroute(self, sub: Subscription) -> None:
        self._routes.pop(sub._id, None)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        deliver = self._routes.get(sid)
        if deliver is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        deliver(subject, reply, data, headers)

    async def send_raw(self, commands: bytes) -> None:
        """Queue protocol ``commands`` built by the caller (one buffer, one write) and flush them."""
        if self.is_closed:
            raise ConnectionClosedError
        await self._send_command(commands)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    async def reply_all(self, replies: list[bytes], verb: bytes) -> None:
        """Send ``verb`` (``+ACK``, ``-NAK``) to every reply subject as one write, then flush.

        The same PUB commands ``publish()`` would send, built in one pass: publish() costs ~3 us of
        Python a call, a tenth of a 10,000-message batch's budget.
        """
        if not replies:
            return
        tail = b" %d\r\n%s\r\n" % (len(verb), verb)
        await self._send_command(b"".join([b"PUB " + r + tail for r in replies]))
        await self.flush()


_HDR_LINE_LEN = len(b"NATS/1.0")


async def open_client(url: str) -> DirectClient:
    """Connect a ``_Client`` to ``url`` (reconnecting forever); check ``_reachable`` first."""
    nc = DirectClient()
    await nc.connect(
        url,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        allow_reconnect=True,
        error_cb=_ignore,
        disconnected_cb=_ignore_none,
    )
    return nc


async def reachable(url: str) -> None:
    """Raise ``OSError`` unless some server of ``url`` accepts a TCP connection."""
    errors: list[str] = []
    for server in url.split(","):
        host, _, port = server.removeprefix("nats://").rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        except (OSError, TimeoutError) as exc:
            errors.append(f"{server}: {exc!r}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise OSError("; ".join(errors))


async def _ignore(_exc: Exception) -> None:
    # nats-py would log every reconnect attempt; a failing publish or fetch reports it to the caller.
    return None


async def _ignore_none() -> None:
    return None


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
    """A process of a group: pulls batches from the group's durable consumer into a private inbox."""

    def __init__(self, nc: DirectClient, subject: str, options: ConsumerOptions) -> None:
        self._nc = nc
        self.subject = subject
        self.stream = stream_name(subject)
        self.options = options
        self._inbox = nc.new_inbox()
        self._next_api = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{options.group}"
        self._sub: Subscription | None = None
        self._req_ids = itertools.count()
        self._current = b""
        self._replies: list[bytes] = []
        self._data: list[bytes] = []
        self._nbytes = 0
        self._done = asyncio.Event()
        self._requested = 0
        self._pending: int | None = None
        self._request = msgspec.json.encode(
            {
                "batch": options.max_batch_size,
                "max_bytes": options.max_batch_bytes,
                "expires": int(options.max_wait * 1e9),
            }
        )

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
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=never_called)
        self._nc.route(self._sub, self._deliver)
        await self._send_request()

    async def _send_request(self) -> None:
        current = f"{self._inbox}.{next(self._req_ids)}"
        self._current = current.encode()
        self._done.clear()
        await self._nc.publish(self._next_api, self._request, reply=current)
        await self._nc.flush()

    def _deliver(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if headers is not None and headers[_HDR_LINE_LEN : _HDR_LINE_LEN + 1] == b" ":
            # A status line (408 expired, 404 no messages, 409 limits): the request is over.
            if subject == self._current:
                self._done.set()
            return
        self._replies.append(reply)
        self._data.append(data)
        self._nbytes += len(data)
        if len(self._data) >= self.options.max_batch_size or self._nbytes >= self.options.max_batch_bytes:
            self._done.set()

    async def fetch(self) -> Fetched | None:
        try:
            await asyncio.wait_for(self._done.wait(), self.options.max_wait + 5.0)
        except TimeoutError:
            pass  # a lost request (server restart): ask again
        replies, values, nbytes = self._replies, self._data, self._nbytes
        self._replies, self._data, self._nbytes = [], [], 0
        # Ask for the next batch before handing this one over, so the broker fills it meanwhile.
        await self._send_request()
        if not values:
            return None
        seqs: list[int] = []
        redelivered = False
        for reply in replies:
            t = reply.split(b".")
            # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or the 12-token form
            # with domain and account hash after $JS.ACK.
            off = 2 if len(t) == 9 else 4
            seqs.append(int(t[off + 3]))
            if t[off + 2] != b"1":
                redelivered = True
        t = replies[-1].split(b".")
        self._pending = int(t[8] if len(t) == 9 else t[10])
        claim = NatsClaim(self.stream, seqs)
        return Fetched(
            values=values,
            locate=lambda i: (0, seqs[i]),
            claim=claim,
            nbytes=nbytes,
            has_redeliveries=redelivered,
            token=replies,
        )

    async def ack(self, fetched: Fetched) -> None:
        await self._reply_all(fetched.token, b"+ACK")

    async def reject(self, fetched: Fetched) -> None:
        await self._reply_all(fetched.token, b"-NAK")

    async def _reply_all(self, replies: list[bytes], verb: bytes) -> None:
        await self._nc.reply_all(replies, verb)

    def lag(self) -> int | None:
        return self._pending

    async def close(self) -> None:
        if self._sub is None:
            return
        # Let the request kept ahead of the handler end (it expires after max_wait), then hand what it
        # brought back at once, so the group's next reader gets it now and in order, not after ack_wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), self.options.max_wait + 1.0)
        replies, self._replies, self._data = self._replies, [], []
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await self._reply_all(replies, b"-NAK")
        self._nc.unroute(self._sub)
        await self._sub.unsubscribe()
        self._sub = None


async def never_called(_msg: Msg) -> None:
    """The callback of a routed subscription (nats-py requires one; routed messages bypass it)."""
    return None
