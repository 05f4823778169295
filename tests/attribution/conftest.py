"""Fixtures of the platform tests: ``quills up`` in a temp data directory, a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers import fresh_pg_database, tansu

from .helpers import Platform


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = Platform(tmp_path / "data")
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            p.stop()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_pg_database("quills_attr_") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def kafka_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with tansu(tmp_path_factory.mktemp("tansu")) as url:
        yield url
