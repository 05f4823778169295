"""Deadlines of async commands, enforced by one daemon thread for the whole process.

A call registers ``(deadline, frame)`` under its slot number: a dict insert, with no need to look up the
running loop or task (those lookups cost more than the rest of a call). Every ``tick`` the thread looks for
calls past their deadline; for each, it finds the task whose coroutine chain holds that frame and asks the
task's own loop (``call_soon_threadsafe``) to cancel it. The loop thread re-checks that the call is still
running before cancelling, so a call that just finished is never cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ("Deadlines",)

_watched: weakref.WeakSet[Deadlines] = weakref.WeakSet()
_lock = threading.Lock()
_thread: threading.Thread | None = None


class Deadlines:
    """The calls of one async command that are in flight, with their deadlines.

    Args:
        name: shown in the cancellation message.
        now_ns: the command's clock, so a fake clock moves deadlines too.
        tick: how often the thread checks, seconds (the command passes a twentieth of its timeout,
            between 1 ms and 50 ms).
    """

    __slots__ = ("__weakref__", "entries", "expired", "name", "now_ns", "tick")

    def __init__(self, name: str, now_ns: Callable[[], int], tick: float) -> None:
        self.name = name
        self.now_ns = now_ns
        self.tick = tick
        self.entries: dict[int, tuple[int, FrameType]] = {}
        self.expired: set[int] = set()
        _watch(self)

    def expire(self, key: int, task: asyncio.Task[Any]) -> None:
        """Runs in the task's loop: cancel the call unless it already finished."""
        if self.entries.pop(key, None) is not None:
            self.expired.add(key)
            task.cancel(f"quills: command {self.name} timed out")

    def overdue(self) -> list[tuple[int, FrameType]]:
        now = self.now_ns()
        return [(key, frame) for key, (deadline, frame) in list(self.entries.items()) if now >= deadline]


def _watch(deadlines: Deadlines) -> None:
    global _thread
    with _lock:
        _watched.add(deadlines)
        if _thread is None:
            _thread = threading.Thread(target=_run, name="quills-deadlines", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        watched = list(_watched)
        tick = min((d.tick for d in watched), default=0.05)
        time.sleep(tick)
        for deadlines in watched:
            if not deadlines.entries:
                continue
            for key, frame in deadlines.overdue():
                task = _task_running(frame)
                if task is not None:
                    task.get_loop().call_soon_threadsafe(deadlines.expire, key, task)


def _all_tasks() -> list[asyncio.Task[Any]]:
    # every task of every loop; asyncio keeps them in a WeakSet (private, but stable in 3.11-3.13)
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None) or asyncio.tasks._all_tasks  # type: ignore[attr-defined]
    refs = list(registry.data)
    tasks = [ref() for ref in refs]
    return [task for task in tasks if task is not None and not task.done()]


def _task_running(frame: FrameType) -> asyncio.Task[Any] | None:
    """The task whose chain of awaited coroutines includes ``frame``."""
    for task in _all_tasks():
        awaited: Any = task.get_coro()
        while awaited is not None:
            if getattr(awaited, "cr_frame", None) is frame:
                return task
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return None
