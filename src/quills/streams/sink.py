"""Transactional sinks: a batch's results and the consumer's positions stored in one DB transaction.

Delivery from the broker is at-least-once. A sink turns that into an exactly-once *effect*: the results of
a batch and the positions it covers commit together or not at all, a consumer resumes from the stored
positions, and a batch whose positions another member already stored is rolled back (see
``quills.streams.position``). The broker's own offsets/acks are then only an optimisation.

Your ``apply(conn, result)`` writes the handler's result with the sink's connection, inside the
transaction; quills then writes the positions and commits. The positions table is ``quills_positions``
``(consumer_group, key, value)`` in the same database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from quills.errors import ConfigError
from quills.streams.position import Claim

__all__ = ("Sink", "SqliteSink")

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class Sink(Protocol[R_contra]):
    """Where a consumer stores each batch's result together with its positions."""

    def positions(self, group: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        """The stored positions of ``group`` (all of them, or only ``keys``)."""
        ...

    def commit(self, group: str, result: R_contra, claim: Claim) -> None:
        """Store ``result`` and advance ``claim``'s positions in one transaction.

        Raises ``StaleClaimError`` (after rolling back) when another member stored these positions first.
        """
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quills_positions (
    consumer_group TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (consumer_group, key)
)
"""


class SqliteSink(Generic[R]):
    """A sink in a SQLite file (WAL journal, ``synchronous=NORMAL``).

    Args:
        path: the database file; created if missing. ``":memory:"`` is refused because positions must
            outlive the process.
        apply: ``apply(conn, result)`` writes one batch's result with ``conn`` (a ``sqlite3.Connection``)
            inside the transaction; it must not commit. ``None`` stores positions only.
        setup: optional SQL script run once at open (``CREATE TABLE IF NOT EXISTS ...`` for your tables).

    ``synchronous=NORMAL`` survives a killed process; after a power loss the last transactions may be
    gone, results and positions together, so the consumer reads those messages again and the totals stay
    exact. One connection is shared by the consumer's worker threads behind a lock.
    """

    def __init__(
        self,
        path: str | Path,
        apply: Callable[[sqlite3.Connection, R], None] | None = None,
        *,
        setup: str = "",
    ) -> None:
        if str(path) in ("", ":memory:"):
            raise ConfigError("SqliteSink needs a file path; positions in memory would not survive a restart")
        self._apply = apply
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(_SQLITE_SCHEMA)
        if setup:
            self._conn.executescript(setup)

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection (for reading results; do not use it while a consumer commits)."""
        return self._conn

    def positions(self, group: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        with self._lock:
            return self._read(group, keys)

    def _read(self, group: str, keys: Sequence[str] | None) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT key, value FROM quills_positions WHERE consumer_group = ?", (group,)
        ).fetchall()
        wanted = None if keys is None else set(keys)
        return {k: v for k, v in rows if wanted is None or k in wanted}

    def commit(self, group: str, result: R, claim: Claim) -> None:
        with self._lock:
            # IMMEDIATE takes the write lock first, so the read-check-write below is atomic across processes.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                new = claim.advance(self._read(group, claim.keys()))
                if self._apply is not None:
                    self._apply(self._conn, result)
                self._conn.executemany(
                    "INSERT INTO quills_positions (consumer_group, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (consumer_group, key) DO UPDATE SET value = excluded.value",
                    [(group, k, v) for k, v in new.items()],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
