"""What a handler receives: the decoded messages of one batch, in broker order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ("Batch",)

T = TypeVar("T")


class Batch(Generic[T]):
    """The decoded, valid messages of one batch (dead-lettered ones are left out).

    ``messages`` is in broker order within each partition; ``topic`` is the broker topic name;
    ``redelivered`` says whether some messages may have reached a handler before (without a sink's
    positions, at-least-once delivery can repeat a batch after a crash).
    """

    __slots__ = ("messages", "redelivered", "topic")

    def __init__(self, topic: str, messages: list[T], *, redelivered: bool = False) -> None:
        self.topic = topic
        self.messages = messages
        self.redelivered = redelivered

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[T]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"Batch({self.topic!r}, {len(self.messages)} messages)"
