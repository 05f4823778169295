"""The sender loop: picks due deliveries, sends each through its partner's command, records every attempt.

Reads: ``deliveries`` (due and pending), the live ``RuleIndex`` (partners). Writes: partner HTTP requests
(through ``PartnerClient``), ``delivery_attempts`` and the new state of each delivery.

Each partner has its own async command ``postback.<partner_id>`` (group ``partner-<partner_id>``): its
bulkhead (``max_concurrent``), breaker and timeout, so a partner that hangs or fails fills only its own
lane; the loop never picks more deliveries for a partner than its lane has room for, and never waits for
one partner's sends before picking the others'. When a partner's circuit is open its deliveries stay
pending (parked) and are picked again once the breaker allows a trial: never dropped. From a rejection
until a delivery is sent again the lane probes: one delivery at a time, and only when none of its calls is
in flight, so a lane whose trial hangs is not picked (and rejected) again and again until the trial ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

import quills
from quills.attribution.config.index import RuleIndex
from quills.attribution.config.messages import Partner
from quills.attribution.config.ssrf import UnsafeTarget
from quills.attribution.postbacks.client import (
    PartnerClient,
    PermanentResponse,
    Response,
    RetryableResponse,
    TransportError,
)
from quills.attribution.postbacks.handlers import backoff_delay, classify
from quills.attribution.postbacks.sinks import Attempt, DeliveryStore, Due
from quills.errors import BulkheadFullError, CircuitOpenError, CommandTimeoutError

__all__ = ("Sender",)

log = logging.getLogger("quills.attribution.postbacks")


class Sender:
    """Delivers what is due.

    Args:
        store: the delivery tables.
        rules: returns the current ``RuleIndex`` (an ``Atom``'s ``deref``).
        client: the partner HTTP client.
        registry: where partner commands are registered (their metrics go to ``hystrix.stream``).
        tick: seconds between looks at the table when nothing is due, 0.001..10 (default 0.05).
        retry_base / retry_cap: backoff of retries, seconds (defaults 30 and 1800: about 30 s, 2 min,
            8 min, 30 min with jitter).
        lease: seconds a picked delivery is hidden from other pickers, at least twice its timeout
            (default 30): after a crash it comes due again then.
    """

    def __init__(
        self,
        store: DeliveryStore,
        rules: Callable[[], RuleIndex],
        client: PartnerClient,
        registry: quills.Registry,
        *,
        tick: float = 0.05,
        retry_base: float = 30.0,
        retry_cap: float = 1800.0,
        lease: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.client = client
        self.registry = registry
        self.tick = tick
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.lease_ms = int(lease * 1000)
        self.rng = rng or random.Random()
        self.in_flight: dict[str, int] = {}
        self._lane: dict[str, int] = {}
        self.parked_until: dict[str, float] = {}
        # lanes whose circuit rejected a call: they pick one delivery at a time until one is answered
        self._probing: set[str] = set()
        self.sent = self.retried = self.dead = self.parked = 0
        self._commands: dict[str, tuple[Partner, Any]] = {}
        # the timeout each partner's command enforces (the client then sets no timer of its own)
        self._deadline: dict[str, float] = {}
        self._results: list[Attempt] = []
        self._wake = asyncio.Event()
        self._stop = False
        self._tasks: set[asyncio.Task[None]] = set()

    def command(self, partner: Partner) -> Any:
        """The partner's command, as the coroutine function to await (built on first use; its options
        follow partner changes)."""
        known = self._commands.get(partner.partner_id)
        if known is not None and known[0] == partner:
            return known[1]
        name = f"postback.{partner.partner_id}"
        if known is None:
            cmd = self.registry.build(
                self.client.send,
                quills.CommandOptions(
                    group=f"partner-{partner.partner_id}",
                    name=name,
                    isolation="async",
                    max_concurrent=partner.max_concurrent,
                    timeout=partner.timeout_s,
                    # a lane calls often: trip on 10 requests in the window, try again after 2 s
                    breaker=quills.BreakerOptions(request_volume_threshold=10, sleep_window=2.0),
                    bad_request=(PermanentResponse, UnsafeTarget),
                ),
            )
        else:
            cmd = known[1]
            try:
                self.registry.configure(
                    name, max_concurrent=partner.max_concurrent, timeout=partner.timeout_s
                )
            except Exception:  # the command keeps its options, and so its deadline
                self._commands[partner.partner_id] = (partner, cmd)
                return cmd
        # await the command's own call (``AsyncCommand.execute``): the same call without one more coroutine
        call = getattr(cmd, "execute", cmd)
        self._commands[partner.partner_id] = (partner, call)
        self._deadline[partner.partner_id] = partner.timeout_s
        return call

    def wake(self) -> None:
        """Look for due deliveries now (new ones were stored)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    async def run(self) -> None:
        """Pick, send and record until ``stop()``; in-flight sends finish (or are recorded later as due)."""
        try:
            while not self._stop:
                # after a pick too: the lanes were just filled, and what frees them (replies) or brings
                # new deliveries sets the wake, so a round right away would mostly record a reply or two
                await self._round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick)
                self._wake.clear()
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)
            await self._round(pick=False)

    async def _round(self, *, pick: bool = True) -> int:
        """Record the attempts that finished and pick what is due for the lanes with room: one
        transaction, one trip to a thread. Returns how many deliveries were picked."""
        index = self.rules()
        now = time.time()
        wants: dict[str, int] = {}
        for pid, partner in index.partners.items() if pick else ():
            if not partner.enabled or self.parked_until.get(pid, 0) > now:
                continue
            self._lane[pid] = partner.max_concurrent
            busy = self.in_flight.get(pid, 0)
            room = (0 if busy else 1) if pid in self._probing else partner.max_concurrent - busy
            if room > 0:
                wants[pid] = room
        results, self._results = self._results, []
        if not wants and not results:
            return 0
        try:
            due = await asyncio.to_thread(self.store.cycle, results, wants, int(now * 1000), self.lease_ms)
        except Exception as exc:  # the leases run out and the deliveries come due again: nothing lost
            log.warning("recording %d attempts and picking failed: %r", len(results), exc)
            return 0
        loop = asyncio.get_running_loop()
        for d in due:
            partner = index.partners[d.partner_id]
            self.in_flight[d.partner_id] = self.in_flight.get(d.partner_id, 0) + 1
            command = self.command(partner)
            task = loop.create_task(self._attempt(d, command, self._deadline[d.partner_id]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(due)

    async def _attempt(self, due: Due, command: Any, timeout_s: float) -> None:
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        retry_after: str | None = None
        try:
            # the command cancels the send at the partner's timeout: the client needs no timer of its own
            response: Response = await command(due, timeout_s)
            code = response.status_code
        except (CircuitOpenError, BulkheadFullError) as exc:
            if isinstance(exc, CircuitOpenError):
                wait = exc.retry_after
                self._probing.add(due.partner_id)
            else:
                wait = 0.05
            # retry_after is 0 while a trial runs: rest the lane a moment (it probes only when idle anyway)
            self.parked_until[due.partner_id] = time.time() + max(wait, 0.05)
            self.parked += 1
            self._done(due, self._park(due, wait))
            return
        except RetryableResponse as exc:
            code, retry_after, error = exc.status_code, exc.retry_after, str(exc)
        except PermanentResponse as exc:
            code, error = exc.status_code, str(exc)
        except UnsafeTarget as exc:
            self._done(due, self._finish(due, None, "failed", started, f"refused: {exc}"))
            return
        except (*TransportError, CommandTimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        outcome = classify(code, retry_after)
        if outcome.status == "sent":  # what closes a circuit (a successful trial): the whole lane again
            self._probing.discard(due.partner_id)
        self._done(due, self._finish(due, code, outcome.status, started, error, outcome.retry_after))

    def _done(self, due: Due, attempt: Attempt) -> None:
        left = self.in_flight[due.partner_id] = self.in_flight[due.partner_id] - 1
        self._results.append(attempt)
        # pick again once a lane is half empty (not after every reply: each pick is a transaction)
        if left <= self._lane.get(due.partner_id, 0) // 2 or len(self._results) >= 500:
            self._wake.set()

    def _park(self, due: Due, wait: float) -> Attempt:
        next_ms = int((time.time() + max(wait, 0.01)) * 1000)
        return Attempt(due, 0, None, "parked", 0.0, None, "pending", next_ms)

    def _finish(
        self,
        due: Due,
        code: int | None,
        outcome: str,
        started: float,
        error: str | None,
        retry_after: float | None = None,
    ) -> Attempt:
        latency = (time.perf_counter() - started) * 1000
        number = due.attempts + 1
        now = time.time()
        if outcome == "sent":
            self.sent += 1
            return Attempt(due, number, code, "sent", latency, None, "sent", 0)
        if outcome == "retry":
            delay = backoff_delay(number, self.retry_base, self.retry_cap, self.rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
            next_ms = math.ceil((now + delay) * 1000)
            if number < due.max_attempts and next_ms <= due.expires_ms:
                self.retried += 1
                return Attempt(due, number, code, "retry", latency, error, "pending", next_ms)
            self.dead += 1
            why = "max attempts" if number >= due.max_attempts else "max age"
            return Attempt(due, number, code, "dead", latency, f"{error} ({why} reached)", "dead", 0)
        self.dead += 1
        return Attempt(due, number, code, "failed", latency, error, "failed", 0)
