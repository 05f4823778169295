"""The NATS backend's private nats-py connection: direct delivery routes and a bulk protocol parser.

nats-py turns every delivered message into a ``Msg``: a regular expression over the control line, a
dict of arguments, a coroutine per message, headers parsed in Python, a queue and a task to run a
callback. That is ~10 us a message, several times the rest of a consumer's work. This client keeps
nats-py for everything else (connecting, reconnecting, the JetStream API) and adds two shortcuts:

- ``route(sub, deliver)``: the raw subject, reply, payload and header bytes of ``sub``'s messages go
  straight to a plain function (the publisher's acknowledgements);
- ``collect(sub, inbox)``: ``sub``'s messages are appended to ``inbox``'s lists, most of them without a
  Python step per message. A read from the socket that holds only whole ``MSG``s for one collecting
  inbox (the usual case while a pull request is being filled) is cut up with a few C-level splits and
  checked as a whole: every control line must have the five ``MSG`` fields and the inbox's sid, and
  every payload the length its line declares, so a payload that holds ``\\r\\n`` (or any other frame
  in the read) is caught and that read takes the per-frame path. Other frames (``HMSG``, ``PING``,
  ``INFO``, ``-ERR``, messages for other subscriptions) go through nats-py's own parser one at a time.

The connection is private to the backbone; ``nats-py`` is pinned below 3 for these internals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

__all__ = ("DirectClient", "Inbox", "never_called", "open_client", "reachable")

Deliver = Callable[[bytes, bytes, bytes, bytes | None], None]

_STATUS_AT = len(b"NATS/1.0")


def _is_status(headers: bytes | None) -> bool:
    """Whether a message's header block is a NATS status (``NATS/1.0 408 ...``), not user headers."""
    return headers is not None and headers[_STATUS_AT : _STATUS_AT + 1] == b" "


class Inbox(Protocol):
    """Where a collected subscription's messages go: the parser appends, the owner takes the lists."""

    replies: list[bytes]
    payloads: list[bytes]
    nbytes: int

    def arrived(self) -> None:
        """Called after messages were appended (once per read from the socket)."""

    def status(self, subject: bytes, headers: bytes) -> None:
        """A status message (no payload to keep) arrived on ``subject``."""


class DirectClient(Client):
    """A nats-py client with ``route`` and ``collect`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[int, Deliver] = {}
        self._inboxes: dict[int, Inbox] = {}
        self._inbox_sids: dict[bytes, Inbox] = {}  # the same, keyed by the sid as the wire spells it
        self._ps = _BulkParser(self)

    def route(self, sub: Subscription, deliver: Deliver) -> None:
        """Send ``sub``'s messages to ``deliver(subject, reply, payload, headers)`` directly."""
        self._routes[sub._id] = deliver

    def collect(self, sub: Subscription, inbox: Inbox) -> None:
        """Append ``sub``'s messages to ``inbox``; status messages go to ``inbox.status``.

        A message with user headers is kept like any other (its headers are dropped).
        """
        self._inboxes[sub._id] = inbox
        self._inbox_sids[b"%d" % sub._id] = inbox

    def unroute(self, sub: Subscription) -> None:
        """Undo ``route`` or ``collect`` for ``sub``."""
        self._routes.pop(sub._id, None)
        self._inboxes.pop(sub._id, None)
        self._inbox_sids.pop(b"%d" % sub._id, None)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        inbox = self._inboxes.get(sid)
        if inbox is not None:
            if headers is not None and _is_status(headers):
                inbox.status(subject, headers)
            else:
                inbox.replies.append(reply)
                inbox.payloads.append(data)
                inbox.nbytes += len(data)
                inbox.arrived()
            return
        deliver = self._routes.get(sid)
        if deliver is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        deliver(subject, reply, data, headers)

    async def send_raw(self, commands: bytes) -> None:
        """Queue protocol ``commands`` built by the caller (one buffer, one write) and flush them.

        Flushing here hands the bytes to the socket; it does not wait for the server (no PING/PONG).
        """
        if self.is_closed:
            raise ConnectionClosedError
        await self._send_command(commands)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    async def reply_all(self, replies: list[bytes], verb: bytes) -> None:
        """Send ``verb`` (``b""`` acks, ``-NAK``) to every reply subject, as one write.

        The same PUB commands ``publish()`` would send (~3 us of Python a call), built by one join.
        """
        if replies:
            tail = b" %d\r\n%s\r\n" % (len(verb), verb)
            await self.send_raw(b"PUB " + (tail + b"PUB ").join(replies) + tail)


class _BulkParser(Parser):
    """nats-py's parser, with whole reads of ``MSG``s for collecting inboxes taken in bulk."""

    def __init__(self, nc: DirectClient) -> None:
        super().__init__(nc)
        self._client = nc

    def reset(self) -> None:
        super().reset()
        self._need = 0  # bytes the unfinished frame at the start of buf needs, when its line told

    async def parse(self, data: bytes = b"") -> None:
        sids = self._client._inbox_sids
        if not sids or self.state != AWAITING_CONTROL_LINE:
            await super().parse(data)
            return
        if len(self.buf) + len(data) < self._need:
            # A large message still arriving: keep it without looking at it again on every read.
            self.buf += data
            return
        self._need = 0
        if self.buf:
            data = bytes(self.buf) + data
            self.buf = bytearray()
        pos, inbox = _take_run(data, sids)
        arrived: set[Inbox] = set() if inbox is None else {inbox}
        try:
            # After a bulk take, what is left may still hold whole frames (a PING, a status message).
            pos = await self._parse_frames(data, pos, sids, arrived)
        finally:
            for box in arrived:
                box.arrived()
        self.buf = bytearray(data[pos:])

    async def _parse_frames(
        self, data: bytes, pos: int, sids: dict[bytes, Inbox], arrived: set[Inbox]
    ) -> int:
        """Take whole frames from ``pos`` one at a time; returns where the first unfinished one starts."""
        n = len(data)
        while pos < n:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                break
            line = data[pos:eol]
            end = eol + 2
            if line.startswith((b"MSG ", b"HMSG ")):
                with contextlib.suppress(ValueError):  # a malformed line: nats-py's parser reports it
                    end += int(line[line.rfind(b" ") + 1 :]) + 2
                if end > n:
                    self._need = end - pos
                    break
                parts = line.split(b" ")
                inbox = sids.get(parts[2]) if len(parts) == 5 and parts[0] == b"MSG" else None
                if inbox is not None and end > eol + 2:
                    payload = data[eol + 2 : end - 2]
                    inbox.replies.append(parts[3])
                    inbox.payloads.append(payload)
                    inbox.nbytes += len(payload)
                    arrived.add(inbox)
                    pos = end
                    continue
            # Anything else, whole, through nats-py's parser (status messages, PING, INFO, -ERR, ...).
            self.buf = bytearray(data[pos:end])
            await super().parse()
            pos = end
        return pos


def _take_run(data: bytes, sids: dict[bytes, Inbox]) -> tuple[int, Inbox | None]:
    """Append the whole messages of ``data`` to their inbox if they are all ``MSG``s for one.

    Returns how many bytes were taken and the inbox, or ``(0, None)`` when the read holds anything else
    (and nothing was appended).
    """
    # splitlines() also cuts at a lone CR or LF, which a payload may hold: the length check below catches
    # that, since the first payload cut short is shorter than its control line says.
    lines = data.splitlines()
    if lines and not data.endswith(b"\r\n"):
        lines.pop()  # an unfinished line
    if len(lines) % 2:
        lines.pop()  # a control line whose payload is still on its way
    k = len(lines) // 2
    if k == 0:
        return 0, None
    head = b" ".join(lines[0::2])
    tokens = head.split(b" ")
    if len(tokens) != 5 * k or tokens[0::5].count(b"MSG") != k:
        return 0, None
    sid = tokens[2]
    inbox = sids.get(sid)
    if inbox is None or tokens[2::5].count(sid) != k:
        return 0, None
    try:
        sizes = _decode_ints(b"[" + b",".join(tokens[4::5]) + b"]")
    except msgspec.DecodeError:
        return 0, None
    payloads = lines[1::2]
    if sizes != list(map(len, payloads)):
        return 0, None
    nbytes = sum(sizes)
    inbox.replies += tokens[3::5]
    inbox.payloads += payloads
    inbox.nbytes += nbytes
    # Each frame is its control line, CRLF, its payload and CRLF; the k lines were joined with k-1 spaces.
    return len(head) - (k - 1) + nbytes + 4 * k, inbox


_decode_ints = msgspec.json.Decoder(list[int]).decode


async def open_client(url: str) -> DirectClient:
    """Connect a ``DirectClient`` to ``url`` (reconnecting forever); check ``reachable`` first."""
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


async def never_called(_msg: Msg) -> None:
    """The callback of a routed subscription (nats-py requires one; routed messages bypass it)."""
    return None
