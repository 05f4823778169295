"""The reports tables: the transactional write of each folded batch, and the merge that adds those
batches into the aggregates.

Reads: ``Fold`` values (inside the consumer's sink transaction); the stored batches (merge).
Writes: ``report_batches`` (one row per folded batch: its aggregate rows, packed), in the same transaction
as the consumer positions; the merge moves the batches into ``report_keys`` (each aggregate row's
dimensions, once), ``report_sums`` (sums and exact device digests) and ``report_hll`` (HyperLogLog
registers of rows past the exact limit) in transactions of its own.

Why a batch is stored whole first: aggregate rows are keyed by a hash, so a batch's rows land all over
the table; updating them in place rewrote a page per row in every commit, and even appending one SQL row
per aggregate row costs ~4-5 us here. One packed row per batch costs about nothing per event; the merge
then updates each aggregate row once for all the batches of its interval, in key order. Reports read the
aggregates and the batches not merged yet in one snapshot (``quills.attribution.reports.query``), so a
batch counts from the commit that stored it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from operator import itemgetter
from typing import Any

import msgspec

from quills.attribution.db import Database
from quills.attribution.reports.handlers import row_text, split_row_text, text_hash
from quills.attribution.reports.messages import Fold
from quills.attribution.reports.sketch import EXACT_LIMIT, compact

__all__ = (
    "schema",
    "RowWriter",
    "apply_fold",
    "DeltaMerger",
    "merge_deltas",
    "encode_rows",
    "decode_rows",
    "checkpoint_wal",
    "COMPACT_BYTES",
    "KNOWN_HOURS",
)

log = logging.getLogger("quills.attribution.reports")

COMPACT_BYTES = 2 * 8 * EXACT_LIMIT
"""A row's appended digests are de-duplicated (or turned into registers) once they pass this size."""

KNOWN_HOURS = 4
"""Hours whose written keys a ``DeltaMerger`` remembers (the latest ones)."""
_READ_CHUNK = 16  # batches read at a time (each holds up to a consumer batch's rows)
_HOUR_HASH = itemgetter(0, 1)

StoredRow = tuple[str, int, int, bytes]
"""One aggregate row of a stored batch: its key as ``row_text``, events, revenue in micro-USD, device
digests. One string rather than eight: decoding and grouping a stored row costs a third as much."""

encode_rows = msgspec.msgpack.Encoder().encode
"""A batch's ``list[StoredRow]`` as stored in ``report_batches.rows`` (MessagePack, in C)."""
decode_rows = msgspec.msgpack.Decoder(list[StoredRow]).decode
"""The ``list[StoredRow]`` of a stored batch."""

_KEYS = (
    "CREATE TABLE IF NOT EXISTS report_keys (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "app_id TEXT NOT NULL, platform TEXT NOT NULL, media_source TEXT NOT NULL, campaign TEXT NOT NULL, "
    "country TEXT NOT NULL, event_type TEXT NOT NULL, event_name TEXT NOT NULL, "
    "PRIMARY KEY (hour, row_hash))"
)
_SUMS = (
    "CREATE TABLE IF NOT EXISTS report_sums (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "events BIGINT NOT NULL, revenue_usd_micros BIGINT NOT NULL, devices {blob} NOT NULL, "
    "PRIMARY KEY (hour, row_hash))"
)
_HLL = (
    "CREATE TABLE IF NOT EXISTS report_hll (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "registers {blob} NOT NULL, PRIMARY KEY (hour, row_hash))"
)
# In commit order (a rowid / identity): a batch appends at the end, the merge reads from the start.
_BATCHES = "CREATE TABLE IF NOT EXISTS report_batches (seq {serial} PRIMARY KEY, rows {blob} NOT NULL)"
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS report_keys_app_hour ON report_keys (app_id, hour)",
    # the rows whose appended digests are due for compaction, found without a scan
    f"CREATE INDEX IF NOT EXISTS report_sums_to_compact ON report_sums (hour) "
    f"WHERE length(devices) > {COMPACT_BYTES}",
)


def schema(db: Database) -> list[str]:
    """DDL of the reports tables for ``db``.

    ``report_batches`` holds each committed batch (its aggregate rows, ``encode_rows``) until the merge
    adds it up. A row's dimensions are written once, to ``report_keys``; its sums live in the narrow
    ``report_sums`` row (about 40 bytes plus at most ``COMPACT_BYTES`` of digests); the 4 KiB registers
    of busy rows in ``report_hll``, rewritten only when digests are compacted into them. These three are
    keyed by (hour, hash of the row key): an hour range is a primary-key range. SQLite: clustered
    ``WITHOUT ROWID`` tables (the batches keep their rowid: appends); the sink's connection keeps a
    16 MiB page cache and leaves checkpoints to ``checkpoint_wal``.
    """
    if db.is_postgres:
        return [
            _KEYS,
            _SUMS.format(blob="BYTEA"),
            _HLL.format(blob="BYTEA"),
            _BATCHES.format(serial="BIGINT GENERATED ALWAYS AS IDENTITY", blob="BYTEA"),
            *_INDEXES,
        ]
    return [
        # the sink only appends batches and updates its positions: a small cache serves it
        "PRAGMA cache_size = -16384",
        # checkpoints run beside the commits (checkpoint_wal), not inside one while it holds the sink
        "PRAGMA wal_autocheckpoint = 0",
        _KEYS + " WITHOUT ROWID",
        _SUMS.format(blob="BLOB") + " WITHOUT ROWID",
        _HLL.format(blob="BLOB") + " WITHOUT ROWID",
        _BATCHES.format(serial="INTEGER", blob="BLOB"),
        *_INDEXES,
    ]


async def checkpoint_wal(db: Database, interval: float = 1.0) -> None:
    """Copy the SQLite write-ahead log into the database every ``interval`` seconds until cancelled
    (PostgreSQL: returns at once).

    A passive checkpoint on its own connection runs beside the consumers' commits instead of inside
    one (SQLite's automatic checkpoint runs in the commit that fills the log, with two fsyncs, while that
    commit holds the sink and the other topics' commits wait behind it).
    """
    if db.is_postgres:
        return
    conn = await asyncio.to_thread(db.connect)
    try:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(sqlite3.Error):
                await asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


_INSERT_BATCH = "INSERT INTO report_batches (rows) VALUES (?)"
_READ_BATCHES = "SELECT seq, rows FROM report_batches WHERE seq > ? ORDER BY seq LIMIT ?"
_DELETE_BATCHES = "DELETE FROM report_batches WHERE seq <= ?"
_INSERT_KEY = (
    "INSERT INTO report_keys (hour, row_hash, app_id, platform, media_source, campaign, country, event_type, "
    "event_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour, row_hash) DO NOTHING"
)
_UPSERT = (
    "INSERT INTO report_sums (hour, row_hash, events, revenue_usd_micros, devices) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, row_hash) DO UPDATE SET events = report_sums.events + excluded.events, "
    "revenue_usd_micros = report_sums.revenue_usd_micros + excluded.revenue_usd_micros, "
    "devices = {concat_excluded}"
)
_DUE = (
    "SELECT s.hour, s.row_hash, s.devices, h.registers FROM report_sums s LEFT JOIN report_hll h "
    f"ON h.hour = s.hour AND h.row_hash = s.row_hash WHERE length(s.devices) > {COMPACT_BYTES}"
)
_COMPACTED = "UPDATE report_sums SET devices = ? WHERE hour = ? AND row_hash = ?"
_REGISTERS = (
    "INSERT INTO report_hll (hour, row_hash, registers) VALUES (?, ?, ?) "
    "ON CONFLICT (hour, row_hash) DO UPDATE SET registers = excluded.registers"
)


class RowWriter:
    """``apply(conn, fold)`` for the consumer's sink: stores a folded batch (no commit).

    The batch's aggregate rows go into one ``report_batches`` row, packed with ``encode_rows``; reports
    count them from then on, and ``DeltaMerger`` later adds them into the aggregates.

    Args:
        db: the database (SQL dialect).
    """

    def __init__(self, db: Database) -> None:
        self._insert = db.sql(_INSERT_BATCH)

    def __call__(self, conn: Any, result: Fold) -> None:
        if result.rows:
            packed = encode_rows([(row_text(key), *value) for key, value in result.rows.items()])
            conn.execute(self._insert, (packed,))


def apply_fold(db: Database) -> RowWriter:
    """A ``RowWriter`` for ``db`` (the sink's ``apply``)."""
    return RowWriter(db)


class DeltaMerger:
    """Adds the stored batches (``report_batches``) into the aggregates: ``merge()`` runs one transaction
    on its own connection and returns how many batches it moved.

    A merge reads batches in commit order until they hold ``max_rows`` aggregate rows, adds up each
    aggregate row over them, writes the keys it has not written before, updates each row's sums once (in
    key order, so neighbouring rows share page writes), compacts the digests of rows past
    ``COMPACT_BYTES`` and deletes the batches it read, all in one transaction: a process killed mid-merge
    leaves the batches where they were, and reports never see a batch twice or not at all. It excludes the
    consumers' commits while it runs (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the group's advisory lock,
    the one ``PostgresSink`` takes), so every batch it sees is committed and none is added behind it.

    Args:
        db: the database.
        group: the consumer group whose commits store the batches (default ``reports``).
        max_rows: aggregate rows per merge, about (whole batches are read), 1..1e7 (default 100,000).
        max_known_keys: row keys remembered as written, 0..1e7 (default 500,000; then it starts over);
            a key not remembered costs a probe of ``report_keys``. Only the ``KNOWN_HOURS`` latest hours
            are remembered (late events are few), so the memory follows the keys of a few hours, not
            the run.
    """

    def __init__(
        self, db: Database, *, group: str = "reports", max_rows: int = 100_000, max_known_keys: int = 500_000
    ) -> None:
        if not 1 <= max_rows <= 10_000_000:
            raise ValueError(f"max_rows must be 1..10000000, got {max_rows}")
        if not 0 <= max_known_keys <= 10_000_000:
            raise ValueError(f"max_known_keys must be 0..10000000, got {max_known_keys}")
        self._db = db
        self._group = group
        self._max_rows = max_rows
        self._max_known = max_known_keys
        self._known: dict[int, set[int]] = {}  # hour -> hashes of the keys written
        self._conn: Any = None
        self._full = False
        self._lock = threading.Lock()
        concat = "{} || {}" if db.is_postgres else "CAST({} || {} AS BLOB)"
        # SQLite's || makes text of blobs (same bytes): cast back, or the column stops being a blob
        self._upsert = db.sql(
            _UPSERT.format(concat_excluded=concat.format("report_sums.devices", "excluded.devices"))
        )
        self._read, self._delete = db.sql(_READ_BATCHES), db.sql(_DELETE_BATCHES)
        self._insert_key = db.sql(_INSERT_KEY)
        self._due, self._compacted, self._registers = db.sql(_DUE), db.sql(_COMPACTED), db.sql(_REGISTERS)

    @property
    def has_more(self) -> bool:
        """Whether the last merge stopped at its bound with batches possibly left over."""
        return self._full

    def merge(self) -> int:
        """One merge transaction (blocking); the number of batches moved (0 when there were none)."""
        with self._lock:
            return self._merge_locked()

    def _merge_locked(self) -> int:
        if self._conn is None:
            self._conn = self._db.connect()
            if not self._db.is_postgres:
                self._conn.execute("PRAGMA cache_size = -16384")
        conn = self._conn
        written: list[tuple[int, int]] = []
        if self._db.is_postgres:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("quills:" + self._group,))
                moved = self._merge(conn, written)
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = self._merge(conn, written)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        # only keys of a committed merge are known to be stored
        known = self._known
        if sum(map(len, known.values())) + len(written) > self._max_known:
            known.clear()
        for hour, h in written:
            hashes = known.get(hour)
            if hashes is None:
                known[hour] = hashes = set()
                for old in sorted(known)[:-KNOWN_HOURS]:
                    del known[old]
            hashes.add(h)
        return moved

    def close(self) -> None:
        """Close the merger's connection (after the merge under way, if any: a cancelled ``merge_deltas``
        cannot stop the thread running it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _merge(self, conn: Any, written: list[tuple[int, int]]) -> int:
        cur = conn.cursor()
        try:
            # [events, micros, digest blobs] per aggregate row
            sums: dict[str, list[Any]] = {}
            batches = 0
            last_seq = 0
            full = False
            while not full:
                chunk = cur.execute(self._read, (last_seq, _READ_CHUNK)).fetchall()
                for seq, packed in chunk:
                    batches += 1
                    last_seq = seq
                    for key, events, micros, digests in decode_rows(packed):
                        row = sums.get(key)
                        if row is None:
                            sums[key] = [events, micros, [digests]]
                        else:
                            row[0] += events
                            row[1] += micros
                            row[2].append(digests)
                    if len(sums) >= self._max_rows:
                        full = True
                        break
                if len(chunk) < _READ_CHUNK:
                    break
            self._full = full
            if not batches:
                return 0
            known = self._known
            keys: list[tuple[Any, ...]] = []
            updates: list[tuple[int, int, int, int, bytes]] = []
            for text, (events, micros, blobs) in sums.items():
                parts = split_row_text(text)
                hour, h = parts[1], text_hash(text)
                if h not in known.get(hour, ()):
                    keys.append((hour, h, parts[0], *parts[2:]))
                    written.append((hour, h))
                updates.append((hour, h, events, micros, b"".join(blobs)))
            del sums
            keys.sort(key=_HOUR_HASH)
            updates.sort(key=_HOUR_HASH)
            cur.executemany(self._insert_key, keys)
            cur.executemany(self._upsert, updates)
            due = cur.execute(self._due).fetchall()
            if due:
                self._compact(cur, due)
            cur.execute(self._delete, (last_seq,))
            return batches
        finally:
            cur.close()

    def _compact(self, cur: Any, due: list[tuple[Any, ...]]) -> None:
        sparse: list[tuple[bytes, int, int]] = []
        dense: list[tuple[int, int, bytes]] = []
        for hour, h, digests, registers in due:
            kept, merged = compact(bytes(digests), registers and bytes(registers))
            sparse.append((kept, hour, h))
            if merged is not None:
                dense.append((hour, h, merged))
        cur.executemany(self._compacted, sparse)
        if dense:
            cur.executemany(self._registers, dense)


async def merge_deltas(merger: DeltaMerger, interval: float = 5.0) -> None:
    """Run ``merger`` every ``interval`` seconds until cancelled, and again at once while batches are
    left over (a failed merge is logged and tried again at the next interval)."""
    try:
        while True:
            await asyncio.sleep(interval)
            while True:
                try:
                    moved = await asyncio.to_thread(merger.merge)
                except Exception:
                    log.exception("merging report batches failed; retrying in %.1f s", interval)
                    break
                if not moved or not merger.has_more:
                    break
    finally:
        await asyncio.to_thread(merger.close)
