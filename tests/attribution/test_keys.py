"""Keys: random, stored as sha256 only, found by hash, admin keys compared in constant time."""

from __future__ import annotations

from pathlib import Path

from quills.attribution.apps import bootstrap, load_keyring
from quills.attribution.db import Database
from quills.attribution.keys import KeyRing, bearer_key, hash_key, new_key


def test_keys_are_random_and_prefixed_by_role() -> None:
    assert new_key().startswith("qi_") and new_key(admin=True).startswith("qa_")
    assert len({new_key() for _ in range(100)}) == 100


def test_bearer_header_parsing() -> None:
    assert bearer_key("Bearer abc") == "abc"
    assert bearer_key("bearer  abc ") == "abc"
    assert bearer_key("Basic abc") is None
    assert bearer_key("Bearer ") is None
    assert bearer_key(None) is None


def test_key_ring_maps_keys_to_their_app_and_knows_admins() -> None:
    app_key, admin = new_key(), new_key(admin=True)
    ring = KeyRing.of([("app1", hash_key(app_key))], [hash_key(admin)])
    assert ring.app_of(app_key) == "app1"
    assert ring.app_of(admin) is None and ring.app_of("qi_wrong") is None
    assert ring.is_admin(admin) and not ring.is_admin(app_key)


def test_bootstrap_stores_only_hashes_and_keeps_keys_across_restarts(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "q.db"))
    creds, created = bootstrap(db, tmp_path, [("app1", "android"), ("app2", "ios")])
    assert created and set(creds["apps"]) == {"app1", "app2"}
    dump = "\n".join(db.connect().iterdump())
    assert creds["admin_key"] not in dump and creds["apps"]["app1"]["key"] not in dump
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    again, created_again = bootstrap(db, tmp_path, [("app1", "android"), ("app2", "ios")])
    assert not created_again and again == creds
    ring = load_keyring(db)
    assert ring.app_of(creds["apps"]["app2"]["key"]) == "app2" and ring.is_admin(creds["admin_key"])
