"""The batch consumer runtime: fetch, decode, dead-letter, handle, store with positions, then ack.

One loop per consumer, one batch in the handler at a time and one more being fetched (the bound on
messages and bytes in flight). The order of a batch's steps is what makes it lose nothing:

1. fetch up to ``max_batch_size`` messages (``max_wait`` at most);
2. drop messages a sink says are already stored (only redeliveries are checked);
3. decode each message once (msgspec, in C); a packed message (``quills.streams.packing``) becomes its
   messages, in order; a message that fails goes to ``<topic>.dlq`` with its bytes, place and reason,
   and the batch goes on without it;
4. call the handler with the decoded batch (sync or async);
5. with a sink: store the handler's result and the batch's positions in one transaction;
6. only then ack/commit to the broker.

A failing step 3-5 is retried with exponential backoff; past ``retry_attempts`` the batch is *parked*:
the consumer reports unhealthy, reads nothing else and tries the batch again every
``parked_retry_interval`` seconds. It never skips a batch. ``stop()`` (and SIGTERM/SIGINT under
``run()``) lets the current batch finish and commit, then leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import Awaitable, Callable
from itertools import repeat
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from quills.clock import SYSTEM_CLOCK, Clock
from quills.errors import ConfigError
from quills.streams.backbone import Backbone, Fetched, PositionLoader, Source
from quills.streams.batch import Batch
from quills.streams.deadletter import DeadLetter
from quills.streams.gcpause import gc_paused
from quills.streams.metrics import ConsumerSnapshot
from quills.streams.options import ConsumerOptions
from quills.streams.position import StaleClaimError
from quills.streams.topic import Topic

if TYPE_CHECKING:
    from quills.streams.sink import Sink

__all__ = ("BatchConsumer",)

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")

_encode_dead_letter = msgspec.json.Encoder().encode
_decode_raw_list = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _flatten(decoded: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in decoded:
        if isinstance(m, list):
            out.extend(m)
        else:
            out.append(m)
    return out


class BatchConsumer(Generic[T, R]):
    """Runs ``handler`` over batches of ``topic`` for ``options.group``. Make one with ``Backbone.consumer``.

    ``handler(batch) -> result`` may be sync or async. With a ``sink``, the result and the batch's
    positions are stored in one transaction and the consumer resumes from the stored positions, which
    makes the sink's totals exact across crashes. The handler must have no other side effects that
    matter, since a retried or redelivered batch calls it again.
    """

    def __init__(
        self,
        backbone: Backbone,
        topic: Topic[T],
        handler: Callable[[Batch[T]], R | Awaitable[R]],
        options: ConsumerOptions,
        *,
        sink: Sink[R] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not callable(handler):
            raise ConfigError(f"handler must be callable, got {handler!r}")
        if not isinstance(options, ConsumerOptions):
            raise ConfigError(f"options must be ConsumerOptions, got {options!r}")
        self.backbone = backbone
        self.topic = topic
        self.options = options
        self._handler = handler
        self._sink = sink
        self._clock = clock
        self._stopping = asyncio.Event()
        self._source: Source | None = None
        self._batches = 0
        self._messages = 0
        self._last_size = 0
        self._max_size = 0
        self._processing_ns = 0
        self._last_processing_ns = 0
        self._dlq = 0
        self._failures = 0
        self._retries = 0
        self._stale = 0
        self._lag: int | None = None
        self._running = False
        self._parked = False
        self._fatal = False
        self._last_error = ""
        # Whether this topic has carried a packed message (see _decode).
        self._packs_seen = False

    def snapshot(self) -> ConsumerSnapshot:
        """The consumer's numbers now (cheap; safe to call from another thread)."""
        return ConsumerSnapshot(
            topic=self.topic.wire_name,
            group=self.options.group,
            batches=self._batches,
            messages=self._messages,
            last_batch_size=self._last_size,
            batch_size_max=self._max_size,
            processing_seconds_total=self._processing_ns / 1e9,
            last_processing_seconds=self._last_processing_ns / 1e9,
            dlq_messages=self._dlq,
            handler_failures=self._failures,
            retries=self._retries,
            stale_batches=self._stale,
            lag=self._lag,
            is_running=self._running,
            is_healthy=not (self._parked or self._fatal),
            is_parked=self._parked,
            last_error=self._last_error,
        )

    def stop(self) -> None:
        """Finish the current batch, commit it, leave the group and return from ``run()``."""
        self._stopping.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Consume until ``stop()`` (or SIGTERM/SIGINT when ``handle_signals``, default True)."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        loader: PositionLoader | None = None
        if self._sink is not None:
            sink, group = self._sink, self.options.group

            def loader(keys: Any) -> dict[str, str]:
                return sink.positions(group, keys)

        try:
            if self.options.dead_letter:
                await self.backbone.ensure_topic(self.topic.dlq_name)
            self._source = source = await self.backbone.open_source(self.topic, self.options, loader)
            self._running = True
            try:
                while not self._stopping.is_set():
                    fetched = await source.fetch()
                    if fetched is None:
                        pass
                    elif self._stopping.is_set():
                        # Stopped while fetching: hand the batch back unhandled for the group's next reader.
                        await source.reject(fetched)
                    elif not await self._process(source, fetched):
                        break
                    self._lag = source.lag()
            finally:
                self._running = False
                await source.close()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _process(self, source: Source, fetched: Fetched) -> bool:
        """Handle one batch to the end; False if stopped before it could be stored."""
        started = self._clock.now_ns()
        values, claim, locate = fetched.values, fetched.claim, fetched.locate
        sink = self._sink
        if fetched.has_redeliveries and sink is not None:
            stored = await asyncio.to_thread(sink.positions, self.options.group, claim.keys())
            done = claim.done(stored)
            if done:
                skip = set(done)
                keep = [i for i in range(len(values)) if i not in skip]
                values = [values[i] for i in keep]
                claim = claim.without(done)
                old_locate = locate

                def locate(i: int) -> tuple[int, int]:
                    return old_locate(keep[i])

        messages, bad = self._decode(values)
        dead = [self._dead_letter(payload, locate(i), reason) for i, payload, reason in bad]
        batch = Batch(self.topic.wire_name, messages, redelivered=fetched.has_redeliveries)
        attempt = 0
        while True:
            try:
                if dead:
                    if not self.options.dead_letter:
                        raise ConfigError(
                            f"{len(dead)} undecodable messages and dead_letter=False: {bad[0][2]}"
                        )
                    await self.backbone.publish_raw(self.topic.dlq_name, dead)
                    self._dlq += len(dead)
                    dead = []
                if messages or sink is not None:
                    result = self._handler(batch)
                    if inspect.isawaitable(result):
                        result = await result
                    if sink is not None:
                        await asyncio.to_thread(sink.commit, self.options.group, result, claim)
                break
            except StaleClaimError as exc:
                # Another member stored these positions first (a rebalance or a paused process): not a
                # failure, and not ours to count. Let the source re-read positions and move on.
                self._stale += 1
                self._last_error = str(exc)
                await source.reject(fetched)
                return True
            except Exception as exc:
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                attempt += 1
                if attempt <= self.options.retry_attempts:
                    self._retries += 1
                    delay = self.options.backoff(attempt)
                else:
                    self._parked = True
                    delay = self.options.parked_retry_interval
                if await self._sleep_or_stop(delay):
                    return False
        self._parked = False
        await source.ack(fetched)
        elapsed = self._clock.now_ns() - started
        n = len(messages)
        self._batches += 1
        self._messages += n
        self._last_size = n
        self._max_size = max(self._max_size, n)
        self._processing_ns += elapsed
        self._last_processing_ns = elapsed
        return True

    def _decode(self, values: list[bytes]) -> tuple[list[T], list[tuple[int, bytes, str]]]:
        """The batch's messages, packed ones flattened in place, and ``(index, bytes, reason)`` of each
        message that failed (``index`` is the log message's; ``bytes`` is the failed message alone)."""
        # Every decoded Struct counts toward the cyclic GC's next collection, though msgspec untracks the
        # ones without containers: paused, it runs once after the batch instead of a dozen times.
        with gc_paused():
            if not self._packs_seen:
                # Until a packed message shows up, the schema's own decoder reads the batch, and no
                # message needs checking for a pack (a tenth of a microsecond each). A pack fails here.
                with contextlib.suppress(msgspec.DecodeError):
                    return list(map(self.topic.decoder.decode, values)), []
            with contextlib.suppress(msgspec.DecodeError):
                decoded = list(map(self.topic.any_decoder.decode, values))
                if not any(map(isinstance, decoded, repeat(list))):
                    return decoded, []
                self._packs_seen = True
                return _flatten(decoded), []
        # Slow path, only for a batch with a bad message: one at a time, so the others are kept.
        decode = self.topic.any_decoder.decode
        decoded = []
        bad: list[tuple[int, bytes, str]] = []
        for i, v in enumerate(values):
            try:
                decoded.append(decode(v))
            except msgspec.DecodeError as exc:
                if v[:1] != b"[" or not self.topic.packable:
                    bad.append((i, v, f"{type(exc).__name__}: {exc}"))
                else:
                    decoded.append(self._decode_packed(i, v, bad))
        if any(map(isinstance, decoded, repeat(list))):
            self._packs_seen = True
        return _flatten(decoded), bad

    def _decode_packed(self, i: int, packed: bytes, bad: list[tuple[int, bytes, str]]) -> list[T]:
        """The good messages of a packed message that failed as a whole, decoded one at a time; the bad
        ones are added to ``bad``, so only they are dead-lettered."""
        try:
            parts = _decode_raw_list(packed)
        except msgspec.DecodeError as exc:
            bad.append((i, packed, f"{type(exc).__name__}: {exc}"))
            return []
        decode = self.topic.decoder.decode
        good: list[T] = []
        for k, part in enumerate(parts):
            try:
                good.append(decode(part))
            except msgspec.DecodeError as exc:
                bad.append(
                    (i, bytes(part), f"{type(exc).__name__} in message {k} of a packed message: {exc}")
                )
        return good

    def _dead_letter(self, payload: bytes, where: tuple[int, int], reason: str) -> bytes:
        return _encode_dead_letter(
            DeadLetter(
                topic=self.topic.wire_name,
                partition=where[0],
                offset=where[1],
                group=self.options.group,
                reason=reason,
                payload=bytes(payload),
                time_ms=self._clock.wall_ms(),
            )
        )

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Wait ``seconds``; True if ``stop()`` was called meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True
