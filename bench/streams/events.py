"""The benchmark's events: ~170-byte JSON installs over 200 app ids (as in backbone.md)."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec


class Install(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    app_id: str
    event_type: Literal["install", "open", "purchase"]
    event_time: str
    platform: Literal["ios", "android"]
    country: str
    media_source: str


def make_events(n: int, start: int = 0) -> list[Install]:
    return [
        Install(
            event_id=str(uuid.UUID(int=i)),
            app_id=f"app{i % 200:03d}",
            event_type="install",
            event_time="2026-11-22T01:00:00Z",
            platform="ios" if i % 2 else "android",
            country="US",
            media_source="network_a",
        )
        for i in range(start, start + n)
    ]


def expected_counts(n: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(n):
        key = f"app{i % 200:03d}"
        counts[key] = counts.get(key, 0) + 1
    return counts
