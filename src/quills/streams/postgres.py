"""A transactional sink in PostgreSQL (psycopg 3): results and positions in one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import psycopg

from quills.errors import ConfigError
from quills.streams.position import Claim

__all__ = ("PostgresSink",)

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quills_positions (
    consumer_group TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (consumer_group, key)
)
"""


class PostgresSink(Generic[R]):
    """A sink in PostgreSQL; see ``quills.streams.sink`` for the contract.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        apply: ``apply(conn, result)`` writes one batch's result with ``conn`` (a ``psycopg.Connection``)
            inside the transaction; it must not commit. ``None`` stores positions only.
        setup: optional SQL run once at open (``CREATE TABLE IF NOT EXISTS ...`` for your tables).

    Commits of one consumer group are serialised with a transaction-scoped advisory lock, so the
    compare-and-set on positions holds across processes and hosts.
    """

    def __init__(
        self,
        dsn: str,
        apply: Callable[[psycopg.Connection[Any], R], None] | None = None,
        *,
        setup: str = "",
    ) -> None:
        if not dsn:
            raise ConfigError("PostgresSink needs a DSN such as postgresql://postgres@127.0.0.1:5432/app")
        self._apply = apply
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        try:
            with self._conn.transaction():
                # CREATE TABLE IF NOT EXISTS is not safe against itself: two processes opening sinks on a
                # new database at once can both try to create the table's type (UniqueViolation on pg_type)
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('quills:sink-schema'))")
                self._conn.execute(_SCHEMA)
                if setup:
                    self._conn.execute(setup.encode())
        except BaseException:
            self._conn.close()
            raise

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The underlying connection (for reading results; do not use it while a consumer commits)."""
        return self._conn

    def positions(self, group: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        with self._lock:
            return self._read(group, keys)

    def _read(self, group: str, keys: Sequence[str] | None) -> dict[str, str]:
        if keys is None:
            rows = self._conn.execute(
                "SELECT key, value FROM quills_positions WHERE consumer_group = %s", (group,)
            ).fetchall()
        else:
            rows = self._conn.execute(
                "SELECT key, value FROM quills_positions WHERE consumer_group = %s AND key = ANY(%s)",
                (group, list(keys)),
            ).fetchall()
        return dict(rows)

    def commit(self, group: str, result: R, claim: Claim) -> None:
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("quills:" + group,))
            new = claim.advance(self._read(group, claim.keys()))
            if self._apply is not None:
                self._apply(self._conn, result)
            with self._conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO quills_positions (consumer_group, key, value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (consumer_group, key) DO UPDATE SET value = excluded.value",
                    [(group, k, v) for k, v in new.items()],
                )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
