"""The quills quick start: a call to a flaky API, with a fallback to a cache on its own bulkhead.

Run it: ``python docs/examples/quickstart.py`` (the test suite runs it too).
"""

from __future__ import annotations

import threading
import time

import quills

CACHE = {42: {"id": 42, "name": "Ada (cached)"}}
api_is_down = threading.Event()


@quills.command(group="users-cache", isolation="semaphore", timeout=0.05)
def cached_user(user_id: int) -> dict[str, object]:
    """The fallback is a command too: it has its own limit, so a saturated API pool cannot starve it."""
    return CACHE.get(user_id, {"id": user_id, "name": "unknown"})


@quills.command(group="users-api", timeout=0.2, fallback=cached_user)
def get_user(user_id: int) -> dict[str, object]:
    """Runs on the "users-api" thread pool (10 threads); gives up after 200 ms."""
    if api_is_down.is_set():
        time.sleep(5)  # the API hangs
    user = {"id": user_id, "name": "Ada"}
    CACHE[user_id] = {**user, "name": "Ada (cached)"}
    return user


def main() -> None:
    print("API up:  ", get_user(42))
    api_is_down.set()
    started = time.perf_counter()
    print("API hung:", get_user(42), f"in {time.perf_counter() - started:.2f}s")
    for _ in range(40):  # enough failures to trip the breaker at its next 500 ms health check
        get_user(42)
    time.sleep(0.6)
    get_user(42)
    snapshot = quills.registry.get("get_user").core.snapshot()
    print("circuit: ", snapshot.breaker.state.value, "| error %:", snapshot.error_percentage)
    started = time.perf_counter()
    print("open:    ", get_user(42), f"in {(time.perf_counter() - started) * 1e6:.0f}us (no thread used)")


if __name__ == "__main__":
    main()
