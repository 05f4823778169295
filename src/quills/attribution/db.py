"""The platform's database: SQLite by default, PostgreSQL when ``QUILLS_DB=postgresql://...``.

One small adapter so the services write their SQL once: statements use ``?`` placeholders and the
``ON CONFLICT`` upsert both databases understand; for PostgreSQL ``?`` becomes ``%s``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from quills.errors import ConfigError
from quills.streams import PostgresSink, SqliteSink

__all__ = ("Database", "database_url")


def database_url(data_dir: str | Path, url: str | None = None) -> str:
    """``url``, else ``QUILLS_DB``, else the SQLite file ``<data_dir>/quills.db``."""
    return url or os.environ.get("QUILLS_DB") or str(Path(data_dir) / "quills.db")


class Database:
    """Where apps, keys and reports live.

    Args:
        url: ``postgresql://user@host:port/db`` (or ``postgres://``), ``sqlite:///path``, or a file path.
    """

    def __init__(self, url: str) -> None:
        if not url:
            raise ConfigError("database URL is empty; give a file path or postgresql://...")
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them
        self.path = "" if self.is_postgres else url.removeprefix("sqlite:///")

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def sql(self, statement: str) -> str:
        """``statement`` with the placeholders of this database."""
        return statement.replace("?", "%s") if self.is_postgres else statement

    def connect(self) -> Any:
        """A new autocommit connection (``sqlite3`` or ``psycopg``); the caller closes it."""
        if self.is_postgres:
            return psycopg.connect(self.url, autocommit=True)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read on a short-lived connection."""
        conn = self.connect()
        try:
            return list(conn.execute(self.sql(statement), tuple(params)).fetchall())
        finally:
            conn.close()

    def script(self, statements: Sequence[str | tuple[str, Sequence[Any]]]) -> None:
        """Run statements (SQL, or ``(SQL, params)``) in one transaction."""
        conn = self.connect()
        try:
            if self.is_postgres:
                with conn.transaction():
                    for s in statements:
                        sql, params = (s, ()) if isinstance(s, str) else s
                        conn.execute(self.sql(sql), tuple(params))
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for s in statements:
                        sql, params = (s, ()) if isinstance(s, str) else s
                        conn.execute(sql, tuple(params))
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        finally:
            conn.close()

    def sink(
        self, apply: Callable[[Any, Any], None], setup: Sequence[str]
    ) -> SqliteSink[Any] | PostgresSink[Any]:
        """A transactional sink in this database (results and consumer positions in one transaction)."""
        if self.is_postgres:
            return PostgresSink(self.url, apply, setup=";\n".join(setup))
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteSink(self.path, apply, setup=";\n".join(setup) + ";")
