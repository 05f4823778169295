"""API keys: how they look, how they are stored (sha256 only) and how a request's key is checked.

A key is ``qi_<32 url-safe chars>`` (ingest, one app) or ``qa_<...>`` (admin). The database keeps only the
sha256 of a key; the raw keys exist in memory of the process that made them and in ``credentials.json``.
sha256 suffices (rather than a slow password hash) because keys are 190 bits of randomness, not
passwords that could be guessed. App keys are found by their hash; admin keys are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ("KeyRing", "new_key", "hash_key", "bearer_key")

_INGEST, _ADMIN = "qi_", "qa_"


def new_key(*, admin: bool = False) -> str:
    """A fresh random key: ``qa_...`` for admin, else ``qi_...`` (an app's ingest key)."""
    return (_ADMIN if admin else _INGEST) + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its sha256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value, None if missing or of another scheme."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


@dataclass(frozen=True)
class KeyRing:
    """Who owns which key: ``apps`` maps a key hash to its app id; ``admins`` holds admin key hashes."""

    apps: dict[str, str] = field(default_factory=dict)
    admins: frozenset[str] = frozenset()

    @classmethod
    def of(cls, app_rows: Iterable[tuple[str, str]], admin_hashes: Iterable[str]) -> KeyRing:
        """From ``(app_id, key_sha256)`` rows and admin key hashes."""
        return cls({h: app for app, h in app_rows}, frozenset(admin_hashes))

    def app_of(self, key: str) -> str | None:
        """The app ``key`` belongs to, or None."""
        # A dict lookup by the key's sha256: any timing it leaks is about the hash, which tells an
        # attacker nothing about a stored key's text (a preimage would be needed).
        return self.apps.get(hash_key(key))

    def is_admin(self, key: str) -> bool:
        """Whether ``key`` is an admin key (compared in constant time against every admin hash)."""
        digest = hash_key(key)
        found = False
        for stored in self.admins:
            found |= hmac.compare_digest(digest, stored)
        return found
