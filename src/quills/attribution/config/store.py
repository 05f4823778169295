"""The configuration tables, the source of truth: partners, postback rules, and the log of every change.

Reads: ``ConfigChange`` values from the config API. Writes: ``partners``, ``postback_rules``, ``apps``
(part 1's table: app id, platform, sha256 of the ingest key) and ``config_changes``, each change and its
log row in one transaction.

Entities are stored as their JSON (msgspec) beside the columns that are queried, so a new optional field
needs no migration. ``version`` is the change time in microseconds, always increasing per entity: a
follower that gets an older value after a newer one keeps the newer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from quills.attribution.apps import ensure_schema as ensure_apps_schema
from quills.attribution.config.messages import AppInfo, ConfigChange, Partner, PostbackRule
from quills.attribution.db import Database
from quills.attribution.keys import hash_key, new_key

__all__ = ("ConfigStore", "NotFound", "Conflict")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS partners (partner_id TEXT PRIMARY KEY, body TEXT NOT NULL, "
    "version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS postback_rules (rule_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, "
    "partner_id TEXT NOT NULL, body TEXT NOT NULL, version BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS postback_rules_app ON postback_rules (app_id)",
    "CREATE TABLE IF NOT EXISTS config_changes (change_id TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, "
    "kind TEXT NOT NULL, op TEXT NOT NULL, entity_key TEXT NOT NULL, body TEXT)",
    "CREATE INDEX IF NOT EXISTS config_changes_at ON config_changes (at_ms)",
)

_json = msgspec.json.Encoder()


class NotFound(LookupError):
    """No such app, partner or rule."""


class Conflict(ValueError):
    """The change contradicts stored configuration (e.g. a rule for an unknown app)."""


class ConfigStore:
    """CRUD of apps, partners and rules in ``db``; every method is blocking (call it in a thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_version = 0

    def ensure_schema(self) -> None:
        ensure_apps_schema(self.db)
        self.db.script(SCHEMA)

    def _version(self) -> int:
        self._last_version = max(self._last_version + 1, time.time_ns() // 1000)
        return self._last_version

    def _change(self, kind: Any, op: Any, key: str, **value: Any) -> tuple[ConfigChange, tuple[str, Any]]:
        change = ConfigChange(
            change_id=uuid.uuid4().hex, at_ms=int(time.time() * 1000), kind=kind, op=op, key=key, **value
        )
        body = next((v for v in value.values() if v is not None), None)
        row = (
            "INSERT INTO config_changes (change_id, at_ms, kind, op, entity_key, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (change.change_id, change.at_ms, kind, op, key, _json.encode(body).decode() if body else None),
        )
        return change, row

    # -- apps ------------------------------------------------------------------------------------------
    def apps(self) -> list[AppInfo]:
        rows = self.db.query("SELECT app_id, platform, created_at FROM apps ORDER BY app_id")
        return [AppInfo(app_id=a, platform=p, created_at=int(c)) for a, p, c in rows]

    def app(self, app_id: str) -> AppInfo:
        rows = self.db.query("SELECT app_id, platform, created_at FROM apps WHERE app_id = ?", (app_id,))
        if not rows:
            raise NotFound(f"no app {app_id!r}")
        a, p, c = rows[0]
        return AppInfo(app_id=a, platform=p, created_at=int(c))

    def create_app(self, app_id: str, platform: str) -> tuple[ConfigChange, str]:
        """Create ``app_id``; returns the change and its new ingest key (shown once, stored hashed)."""
        if self.db.query("SELECT 1 FROM apps WHERE app_id = ?", (app_id,)):
            raise Conflict(f"app {app_id!r} exists")
        key, now = new_key(), int(time.time())
        info = AppInfo(app_id=app_id, platform=platform, created_at=now)
        change, log = self._change("app", "upsert", app_id, app=info)
        insert = "INSERT INTO apps (app_id, platform, key_sha256, created_at) VALUES (?, ?, ?, ?)"
        self.db.script([(insert, (app_id, platform, hash_key(key), now)), log])
        return change, key

    def rotate_app_key(self, app_id: str) -> tuple[ConfigChange, str]:
        """Give ``app_id`` a new ingest key (the old one stops working at the services' next key reload)."""
        info = self.app(app_id)
        key = new_key()
        change, log = self._change("app", "upsert", app_id, app=info)
        update = "UPDATE apps SET key_sha256 = ? WHERE app_id = ?"
        self.db.script([(update, (hash_key(key), app_id)), log])
        return change, key

    def delete_app(self, app_id: str) -> ConfigChange:
        """Delete ``app_id`` and its rules."""
        self.app(app_id)
        change, log = self._change("app", "delete", app_id)
        self.db.script(
            [
                ("DELETE FROM postback_rules WHERE app_id = ?", (app_id,)),
                ("DELETE FROM apps WHERE app_id = ?", (app_id,)),
                log,
            ]
        )
        return change

    # -- partners --------------------------------------------------------------------------------------
    def partners(self) -> list[Partner]:
        rows = self.db.query("SELECT body FROM partners ORDER BY partner_id")
        return [msgspec.json.decode(b, type=Partner) for (b,) in rows]

    def partner(self, partner_id: str) -> Partner:
        rows = self.db.query("SELECT body FROM partners WHERE partner_id = ?", (partner_id,))
        if not rows:
            raise NotFound(f"no partner {partner_id!r}")
        return msgspec.json.decode(rows[0][0], type=Partner)

    def put_partner(self, partner: Partner) -> ConfigChange:
        partner = msgspec.structs.replace(partner, version=self._version())
        change, log = self._change("partner", "upsert", partner.partner_id, partner=partner)
        upsert = (
            "INSERT INTO partners (partner_id, body, version) VALUES (?, ?, ?) ON CONFLICT (partner_id) "
            "DO UPDATE SET body = excluded.body, version = excluded.version"
        )
        body = _json.encode(partner).decode()
        self.db.script([(upsert, (partner.partner_id, body, partner.version)), log])
        return change

    def delete_partner(self, partner_id: str) -> ConfigChange:
        self.partner(partner_id)
        if self.db.query("SELECT 1 FROM postback_rules WHERE partner_id = ?", (partner_id,)):
            raise Conflict(f"partner {partner_id!r} still has rules; delete them first")
        change, log = self._change("partner", "delete", partner_id)
        self.db.script([("DELETE FROM partners WHERE partner_id = ?", (partner_id,)), log])
        return change

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, app_id: str | None = None) -> list[PostbackRule]:
        if app_id is None:
            rows = self.db.query("SELECT body FROM postback_rules ORDER BY rule_id")
        else:
            rows = self.db.query(
                "SELECT body FROM postback_rules WHERE app_id = ? ORDER BY rule_id", (app_id,)
            )
        return [msgspec.json.decode(b, type=PostbackRule) for (b,) in rows]

    def rule(self, rule_id: str) -> PostbackRule:
        rows = self.db.query("SELECT body FROM postback_rules WHERE rule_id = ?", (rule_id,))
        if not rows:
            raise NotFound(f"no rule {rule_id!r}")
        return msgspec.json.decode(rows[0][0], type=PostbackRule)

    def put_rule(self, rule: PostbackRule) -> ConfigChange:
        """Store ``rule`` (validated by the caller); its app and partner must exist."""
        self.app(rule.app_id)
        self.partner(rule.partner_id)
        rule = msgspec.structs.replace(rule, version=self._version())
        change, log = self._change("rule", "upsert", rule.rule_id, rule=rule)
        upsert = (
            "INSERT INTO postback_rules (rule_id, app_id, partner_id, body, version) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (rule_id) DO UPDATE SET app_id = excluded.app_id, partner_id = excluded.partner_id, "
            "body = excluded.body, version = excluded.version"
        )
        body = _json.encode(rule).decode()
        self.db.script([(upsert, (rule.rule_id, rule.app_id, rule.partner_id, body, rule.version)), log])
        return change

    def delete_rule(self, rule_id: str) -> ConfigChange:
        self.rule(rule_id)
        change, log = self._change("rule", "delete", rule_id)
        self.db.script([("DELETE FROM postback_rules WHERE rule_id = ?", (rule_id,)), log])
        return change

    def changes(self, since_ms: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The change log from ``since_ms`` on, oldest first."""
        rows = self.db.query(
            "SELECT change_id, at_ms, kind, op, entity_key FROM config_changes WHERE at_ms >= ? "
            "ORDER BY at_ms LIMIT ?",
            (since_ms, limit),
        )
        return [dict(zip(("change_id", "at_ms", "kind", "op", "key"), r, strict=True)) for r in rows]
