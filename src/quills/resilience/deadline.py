"""Deadlines of async commands, enforced by one daemon thread for the whole process.

A call registers only its coroutine object under its slot number: one dict insert, with no clock
arithmetic and no look-up of the running loop or task (those cost more than the rest of a call). Every
``tick`` the thread stamps the calls it sees for the first time and expires those seen at least
``timeout`` ago, so a timeout fires between ``timeout`` and ``timeout + 2 * tick`` after the call started
(tick = timeout / 20: at most 10 % late). For each expired call it finds the task whose chain of awaits
holds that coroutine and asks the task's own loop (``call_soon_threadsafe``) to cancel it. The loop
thread re-checks that the call is still running before cancelling, so a call that just finished is
never cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ("Deadlines",)

_watched: weakref.WeakSet[Deadlines] = weakref.WeakSet()
_lock = threading.Lock()
_thread: threading.Thread | None = None


class Deadlines:
    """The calls of one async command that are in flight, with their deadlines.

    Args:
        name: shown in the cancellation message.
        now_ns: the command's clock, so a fake clock moves deadlines too (a call's time starts when the
            thread first sees it, so advance a fake clock only after a tick has passed).
        timeout_ns: reads the command's current timeout (it can change at runtime).
    """

    __slots__ = ("__weakref__", "_seen", "entries", "expired", "name", "now_ns", "timeout_ns")

    def __init__(self, name: str, now_ns: Callable[[], int], timeout_ns: Callable[[], int]) -> None:
        self.name = name
        self.now_ns = now_ns
        self.timeout_ns = timeout_ns
        #: calls in flight: slot number -> the coroutine the command is awaiting
        self.entries: dict[int, Coroutine[Any, Any, Any]] = {}
        self.expired: set[int] = set()
        self._seen: dict[int, int] = {}
        _watch(self)

    @property
    def tick(self) -> float:
        """How often the thread checks: a twentieth of the timeout, between 1 ms and 50 ms."""
        return min(0.05, max(0.001, self.timeout_ns() / 20e9))

    def expire(self, key: int, task: asyncio.Task[Any]) -> None:
        """Runs in the task's loop: cancel the call unless it already finished."""
        if self.entries.pop(key, None) is not None:
            self.expired.add(key)
            task.cancel(f"quills: command {self.name} timed out")

    def overdue(self) -> list[tuple[int, Coroutine[Any, Any, Any]]]:
        """Calls seen at least a timeout ago (runs in the deadline thread)."""
        now = self.now_ns()
        timeout = self.timeout_ns()
        seen = self._seen
        current = dict(self.entries)  # one C-level copy, safe against the loop thread's inserts
        for key in [key for key in seen if key not in current]:
            del seen[key]
        due = []
        for key, coro in current.items():
            first = seen.setdefault(key, now)
            if now - first >= timeout:
                due.append((key, coro))
        return due


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
            for key, coro in deadlines.overdue():
                task = _task_running(coro)
                if task is not None:
                    task.get_loop().call_soon_threadsafe(deadlines.expire, key, task)


def _all_tasks() -> list[asyncio.Task[Any]]:
    # every task of every loop; asyncio keeps them in a WeakSet (private, but stable in 3.11-3.13)
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None) or asyncio.tasks._all_tasks  # type: ignore[attr-defined]
    refs = list(registry.data)
    tasks = [ref() for ref in refs]
    return [task for task in tasks if task is not None and not task.done()]


def _task_running(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    """The task whose chain of awaited coroutines includes ``coro``."""
    for task in _all_tasks():
        awaited: Any = task.get_coro()
        while awaited is not None:
            if awaited is coro:
                return task
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return None
