"""The retry policy with real processes: 5xx retried until max attempts then dead, 4xx never retried,
``Retry-After`` honoured, and retries scheduled before a SIGKILL still happen after the restart."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from quills.attribution.config import ConfigStore, Partner, PostbackRule
from quills.attribution.db import Database

from .conftest import make_events, publish, setup_config, wait_for
from .procs import PostbacksProcess, ReceiverProcess


def statuses(db: Database) -> dict[str, str]:
    return dict(db.query("SELECT rule_id, status FROM deliveries"))


def test_failures_retry_to_dead_4xx_fail_at_once_and_retry_after_is_honoured(
    tmp_path: Path, nats_url: str, store: ConfigStore
) -> None:
    receivers = {m: ReceiverProcess(tmp_path, m, mode=m) for m in ("fail", "404", "429")}
    setup_config(
        store,
        [Partner(partner_id=f"net{m}") for m in receivers],
        [
            PostbackRule(
                rule_id=f"r{m}",
                app_id="app1",
                partner_id=f"net{m}",
                scope="all_including_organic",
                url_template=r.url + "/pb?id={postback_id}",
                max_attempts=3,
            )
            for m, r in receivers.items()
        ],
    )
    db = store.db
    service = PostbacksProcess(tmp_path, db.url, nats_url, retry_base=0.1, retry_cap=0.2)
    try:
        publish(nats_url, make_events(1))
        wait_for(
            lambda: statuses(db) == {"rfail": "dead", "r404": "failed", "r429": "dead"},
            30,
            "final statuses",
            service.log,
        )
        attempts = dict(db.query("SELECT rule_id, COUNT(*) FROM delivery_attempts GROUP BY rule_id"))
        assert attempts == {"rfail": 3, "r404": 1, "r429": 3}
        assert len(receivers["404"].received()) == 1
        times = [
            t
            for (t,) in db.query(
                "SELECT at_ms FROM delivery_attempts WHERE rule_id = 'r429' ORDER BY attempt"
            )
        ]
        # Retry-After: 1 beats the 0.1-0.2 s backoff
        assert all(b - a >= 900 for a, b in itertools.pairwise(times)), times
        (error,) = db.query("SELECT last_error FROM deliveries WHERE rule_id = 'rfail'")[0]
        assert "max attempts" in error
    finally:
        service.stop()
        for r in receivers.values():
            r.kill()


def test_retries_scheduled_before_a_sigkill_happen_after_the_restart(
    tmp_path: Path, nats_url: str, store: ConfigStore
) -> None:
    receiver = ReceiverProcess(tmp_path, "r", mode="fail")
    setup_config(
        store,
        [Partner(partner_id="net")],
        [
            PostbackRule(
                rule_id="r",
                app_id="app1",
                partner_id="net",
                scope="all_including_organic",
                url_template=receiver.url + "/pb?id={postback_id}",
                max_attempts=20,
            )
        ],
    )
    db = store.db
    # a long backoff: the retries are still scheduled when the service is killed
    service = PostbacksProcess(tmp_path, db.url, nats_url, retry_base=3.0, retry_cap=3.0)
    try:
        publish(nats_url, make_events(20))
        wait_for(
            lambda: (
                db.query("SELECT COUNT(*) FROM deliveries WHERE attempts >= 1 AND status = 'pending'")[0][0]
                == 20
            ),
            30,
            "first failed attempts",
            service.log,
        )
        service.kill()
        receiver.set_mode("ok")
        before = len(receiver.received())
        service.start()
        wait_for(
            lambda: db.query("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")[0][0] == 20,
            30,
            "retries after the restart",
            service.log,
        )
        assert len(receiver.received()) - before >= 20
        time.sleep(0.2)
    finally:
        service.stop()
        receiver.kill()
