"""What every platform process shares: the event loop (uvloop when installed), a uvicorn server on the
running loop, a periodic reload of the key ring, and the garbage collector's tuning for a hot path."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

from quills.attribution.apps import load_keyring
from quills.attribution.db import Database
from quills.attribution.keys import KeyRing
from quills.errors import ConfigError
from quills.streams import ConsumerOptions

__all__ = (
    "run_main",
    "uvicorn_server",
    "KeyRingHolder",
    "setup_logging",
    "service_parser",
    "run_service",
    "freeze_startup_heap",
    "event_batches",
)

T = TypeVar("T")
C = TypeVar("C")


def freeze_startup_heap(young_threshold: int) -> None:
    """Keep the cyclic GC off what start-up allocated, and collect the young generation less often.

    Everything allocated so far (modules, the app, caches) lives as long as the process: it is collected
    once, then frozen, so full collections never walk it again. ``young_threshold`` (CPython's default is
    700 allocations) lets a hot path's short-lived containers die before a collection would promote them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, 10, 10)


def service_parser(module: str, description: str | None, port_help: str) -> argparse.ArgumentParser:
    """The flags every service takes; each overrides its ``QUILLS_*`` variable. Add the service's own."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=port_help)
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default QUILLS_DATA_DIR or .quills)"
    )
    parser.add_argument("--db", dest="db_url", default=None, help="database (default QUILLS_DB)")
    parser.add_argument(
        "--broker", dest="broker_url", default=None, help="broker URL (default QUILLS_BROKER)"
    )
    return parser


def run_service(
    name: str,
    args: argparse.Namespace,
    config_from_env: Callable[..., C],
    serve: Callable[[C], Coroutine[Any, Any, Any]],
) -> int:
    """Validate the configuration and run the service until it is stopped.

    Returns the exit code: 0 after a clean stop (SIGTERM, Ctrl-C), 2 with a one-line message on stderr
    when the configuration is invalid.
    """
    setup_logging(name)
    try:
        config = config_from_env(**vars(args))
        run_main(lambda: serve(config))
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def run_main(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on uvloop if it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(main())
    return uvloop.run(main())


def setup_logging(name: str) -> None:
    """Plain ``LEVEL name: message`` lines on stderr (the supervisor prefixes them with the service)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=f"%(levelname)s {name}: %(message)s")


def uvicorn_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app`` (httptools parser when installed, no access log, warnings only)."""
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:  # pragma: no cover
        http = "h11"
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        backlog=2048,
    )
    return uvicorn.Server(config)


class KeyRingHolder:
    """The current key ring, reloaded from the database every ``interval`` seconds (0.1..3600).

    A failed reload keeps the previous ring and logs why (the database may be restarting)."""

    def __init__(self, db: Database, interval: float) -> None:
        self._db = db
        self._interval = interval
        self.ring = KeyRing()
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> KeyRing:
        return self.ring

    async def load(self) -> None:
        """Load now (raises if the database cannot be read)."""
        self.ring = await asyncio.to_thread(load_keyring, self._db)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._reload_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.load()
            except Exception as exc:
                logging.getLogger("quills.attribution").warning("key reload failed: %r", exc)


async def wait_first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# An encoded event is 400-900 bytes (the traffic model's average is ~670).
_EVENT_BYTES = 700


def event_batches(group: str, max_events: int, max_wait: float) -> ConsumerOptions:
    """Consumer options for batches of about ``max_events`` events, packed or not.

    ``max_batch_size`` counts log messages, and ingest packs up to 1,000 events into one
    (``quills.streams.packing``), so the bound that holds the events of a batch near ``max_events`` is
    the bytes: ``max_events`` x 700 bytes (at least 1 MiB, so a whole packed message always fits).
    """
    return ConsumerOptions(
        group=group,
        max_batch_size=max_events,
        max_wait=max_wait,
        max_batch_bytes=max(1 << 20, max_events * _EVENT_BYTES),
    )
