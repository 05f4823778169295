"""Apps and their keys in the database; the first-start bootstrap of demo apps and ``credentials.json``.

Tables (created if missing; part 2 adds partners and postback rules beside them):

- ``apps(app_id PRIMARY KEY, platform, key_sha256, created_at)``: one ingest key per app.
- ``admin_keys(key_sha256 PRIMARY KEY, created_at)``.

Raw keys are never stored in the database, only their sha256 (``quills.attribution.keys``); the bootstrap
writes them once to ``<data-dir>/credentials.json`` (mode 0600) so the operator and ``quills loadgen`` can
use them. Services load the key ring at start and reload it every few seconds (``load_keyring``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from quills.attribution.db import Database
from quills.attribution.keys import KeyRing, hash_key, new_key

__all__ = (
    "SCHEMA",
    "ensure_schema",
    "add_app",
    "add_admin_key",
    "load_keyring",
    "bootstrap",
    "read_credentials",
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS apps (app_id TEXT PRIMARY KEY, platform TEXT NOT NULL, "
    "key_sha256 TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS admin_keys (key_sha256 TEXT PRIMARY KEY, created_at BIGINT NOT NULL)",
)


def ensure_schema(db: Database) -> None:
    """Create the apps and admin key tables if missing."""
    db.script(SCHEMA)


def add_app(db: Database, app_id: str, platform: str) -> str:
    """Register ``app_id`` and return its new ingest key (shown once; only its hash is stored)."""
    key = new_key()
    db.script(
        [
            (
                "INSERT INTO apps (app_id, platform, key_sha256, created_at) VALUES (?, ?, ?, ?)",
                (app_id, platform, hash_key(key), int(time.time())),
            )
        ]
    )
    return key


def add_admin_key(db: Database) -> str:
    """Create and return a new admin key."""
    key = new_key(admin=True)
    db.script(
        [("INSERT INTO admin_keys (key_sha256, created_at) VALUES (?, ?)", (hash_key(key), int(time.time())))]
    )
    return key


def load_keyring(db: Database) -> KeyRing:
    """Every app key hash and admin key hash, as a ``KeyRing``."""
    apps = db.query("SELECT app_id, key_sha256 FROM apps")
    admins = db.query("SELECT key_sha256 FROM admin_keys")
    return KeyRing.of([(a, h) for a, h in apps], [h for (h,) in admins])


def read_credentials(data_dir: str | Path) -> dict[str, Any]:
    """The ``credentials.json`` written by ``bootstrap`` (raises ``FileNotFoundError`` if none)."""
    data: dict[str, Any] = json.loads((Path(data_dir) / "credentials.json").read_text())
    return data


def bootstrap(db: Database, data_dir: str | Path, apps: list[tuple[str, str]]) -> tuple[dict[str, Any], bool]:
    """Create the demo ``apps`` ``(app_id, platform)`` with keys and an admin key, once.

    Returns the credentials and whether they were created now. When ``credentials.json`` exists and the
    database knows its admin key, nothing changes (a restart keeps the keys).
    """
    ensure_schema(db)
    path = Path(data_dir) / "credentials.json"
    if path.exists():
        creds = read_credentials(data_dir)
        known = {h for (h,) in db.query("SELECT key_sha256 FROM admin_keys")}
        if hash_key(creds.get("admin_key", "")) in known:
            return creds, False
    admin = new_key(admin=True)
    rows: list[tuple[str, str, str]] = []
    keys: dict[str, dict[str, str]] = {}
    existing = {a for (a,) in db.query("SELECT app_id FROM apps")}
    for app_id, platform in apps:
        key = new_key()
        keys[app_id] = {"key": key, "platform": platform}
        rows.append((app_id, platform, hash_key(key)))
    now = int(time.time())
    # Keys of apps that exist but whose raw key was lost (no credentials file) are rotated.
    statements: list[str | tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO admin_keys (key_sha256, created_at) VALUES (?, ?)", (hash_key(admin), now))
    ]
    for app_id, platform, digest in rows:
        if app_id in existing:
            statements.append(("UPDATE apps SET key_sha256 = ? WHERE app_id = ?", (digest, app_id)))
        else:
            statements.append(
                (
                    "INSERT INTO apps (app_id, platform, key_sha256, created_at) VALUES (?, ?, ?, ?)",
                    (app_id, platform, digest, now),
                )
            )
    db.script(statements)
    creds = {"admin_key": admin, "apps": keys, "created_at": now}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(creds, out, indent=1)
    os.replace(tmp, path)
    return creds, True
