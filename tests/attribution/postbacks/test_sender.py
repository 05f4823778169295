"""The sender with real parts (SQLite delivery tables, the partner client, quills commands) against a
receiver that never answers: an open circuit parks the lane's deliveries, never drops them, and a lane
whose trial call hangs is not picked again until the trial ends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import quills
from quills.attribution.config import Partner, RuleIndex, TargetPolicy
from quills.attribution.db import Database
from quills.attribution.postbacks import PartnerClient
from quills.attribution.postbacks.messages import Delivery
from quills.attribution.postbacks.sender import Sender
from quills.attribution.postbacks.sinks import SCHEMA, DeliveryStore, apply_deliveries
from quills.resilience.events import CircuitOpened, CommandEvent

from .factories import rule
from .procs import ReceiverProcess


def store_deliveries(db: Database, partner_id: str, url: str, n: int, timeout_s: float) -> None:
    now = int(time.time() * 1000)
    deliveries = [
        Delivery(
            postback_id=f"pb{i:04d}",
            rule_id="r1",
            partner_id=partner_id,
            app_id="app1",
            event_id=f"e{i}",
            method="GET",
            url=f"{url}/pb?id={i}",
            timeout_s=timeout_s,
            created_ms=now,
            due_ms=now,
            expires_ms=now + 3_600_000,
        )
        for i in range(n)
    ]
    conn = db.connect()
    try:
        conn.execute("BEGIN IMMEDIATE")
        apply_deliveries(db)(conn, deliveries)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_lane_whose_trial_hangs_probes_once_and_keeps_its_deliveries(tmp_path: Path) -> None:
    receiver = ReceiverProcess(tmp_path, "hung", mode="hang")
    db = Database(str(tmp_path / "quills.db"))
    db.script(SCHEMA)
    lane = 5
    partner = Partner(partner_id="net", max_concurrent=lane, timeout_s=0.3)
    store_deliveries(db, "net", receiver.url, 200, 0.3)
    index = RuleIndex.of([partner], [rule(url_template=receiver.url + "/pb?id={postback_id}", timeout_s=0.3)])

    async def run() -> Sender:
        registry = quills.Registry()
        client = PartnerClient(TargetPolicy.parse("127.0.0.0/8"))
        store = DeliveryStore(db)
        sender = Sender(store, lambda: index, client, registry, tick=0.01)
        loop = asyncio.get_running_loop()
        trial_failed = asyncio.Event()

        def on_event(event: CommandEvent) -> None:
            if isinstance(event, CircuitOpened) and event.reason == "trial failed":
                loop.call_soon_threadsafe(trial_failed.set)

        registry.subscribe(on_event)
        running = asyncio.ensure_future(sender.run())
        try:
            # trips after 10 timed-out calls, waits its 2 s sleep window, lets one trial through, which hangs
            # until its timeout and opens the circuit again
            await asyncio.wait_for(trial_failed.wait(), 30)
        finally:
            sender.stop()
            await running
            await client.aclose()
            store.close()
        return sender

    try:
        sender = asyncio.run(run())
    finally:
        receiver.kill()
    # parked: the calls rejected while the circuit was open. Picking the lane again each time a rejection
    # came back would park hundreds while the trial hangs; probing parks at most a lane's worth per opening
    assert 1 <= sender.parked <= 3 * lane, sender.parked
    assert sender.sent == 0
    rows = dict(db.query("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
    assert rows == {"pending": 200}  # parked or waiting for their retry: none dropped
    tried = db.query("SELECT COUNT(*) FROM delivery_attempts WHERE outcome = 'retry'")[0][0]
    assert tried >= 11  # the calls that tripped the circuit, and the trial
