"""The delivery tables: deliveries stored once each, several rows per statement; and what the delivery log
keeps of a URL (secrets masked, user info and fragment dropped, the rest as sent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quills.attribution.db import Database
from quills.attribution.postbacks.messages import Delivery
from quills.attribution.postbacks.sinks import SCHEMA, apply_deliveries, insert_rows, redact


def delivery(i: int) -> Delivery:
    return Delivery(
        postback_id=f"pb{i:04d}",
        rule_id="r1",
        partner_id="net",
        app_id="app1",
        event_id=f"e{i}",
        method="GET",
        url=f"https://pb.example.com/p?id={i}",
        created_ms=1,
        due_ms=1,
        expires_ms=2,
    )


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("https://pb.example.com/p?click=c1&id=42", "https://pb.example.com/p?click=c1&id=42"),
        ("https://pb.example.com/p?id=42#frag", "https://pb.example.com/p?id=42"),
        ("https://pb.example.com/p?api_key=s3cr3t&id=1", "https://pb.example.com/p?api_key=***&id=1"),
        (
            "https://pb.example.com/p?API_TOKEN=t&Sig=x&n=1",
            "https://pb.example.com/p?API_TOKEN=***&Sig=***&n=1",
        ),
        ("https://user:pw@pb.example.com/p?id=1", "https://pb.example.com/p?id=1"),
        ("https://pb.example.com/p?pass%20word=x", "https://pb.example.com/p?pass%20word=***"),
        # a secret word in the path alone: the URL is parsed, and its query kept as it was
        ("https://pb.example.com/hash/p?id=1", "https://pb.example.com/hash/p?id=1"),
        ("https://pb.example.com:bad/p?key=1", "<invalid url>"),
    ],
)
def test_secrets_are_masked_and_the_rest_kept_as_sent(url: str, logged: str) -> None:
    assert redact(url) == logged


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 200])
def test_deliveries_are_stored_once_each_in_any_number(tmp_path: Path, n: int) -> None:
    db = Database(str(tmp_path / "quills.db"))
    db.script(SCHEMA)
    deliveries = [delivery(i) for i in range(n)]
    conn = db.connect()
    try:
        for batch in (deliveries, deliveries[: n // 2 + 1]):  # the second batch is all duplicates
            conn.execute("BEGIN IMMEDIATE")
            apply_deliveries(db)(conn, batch)
            conn.execute("COMMIT")
    finally:
        conn.close()
    rows = db.query("SELECT postback_id, url, attempts, status FROM deliveries ORDER BY postback_id")
    assert rows == [
        (d.postback_id, d.url, 0, "pending") for d in sorted(deliveries, key=lambda d: d.postback_id)
    ]


def test_insert_rows_runs_the_insert_for_every_row(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "t.db"))
    conn = db.connect()
    try:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, c TEXT NOT NULL)")
        insert = "INSERT INTO t (k, v, c) VALUES (?, ?, 'const') ON CONFLICT (k) DO NOTHING"
        for n in (0, 1, 5, 64, 131):
            conn.execute("DELETE FROM t")
            rows = [(i % 100, f"v{i}") for i in range(n)]  # from 100 on, the keys repeat: the first stays
            insert_rows(conn, insert, rows)
            got = conn.execute("SELECT k, v, c FROM t ORDER BY k").fetchall()
            assert got == [(i, f"v{i}", "const") for i in range(min(n, 100))]
    finally:
        conn.close()
