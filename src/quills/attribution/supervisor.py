"""A small process supervisor for ``quills up``: one child process per service, restarted with
exponential backoff when it dies, output prefixed with its name, stopped cleanly on SIGINT/SIGTERM.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only the supervisor, which then
stops them in reverse start order (SIGTERM, SIGKILL after ``grace`` seconds). On Linux each child also
gets SIGTERM if the supervisor itself dies (``PR_SET_PDEATHSIG``), so no service outlives it. The pid of
each running child is kept in ``<run_dir>/<name>.pid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from quills.attribution.runtime import wait_first

__all__ = ("ServiceSpec", "Supervisor", "backoff_delay")


@dataclass(frozen=True)
class ServiceSpec:
    """One supervised service.

    Args:
        name: the log prefix and pid file name.
        argv: the command line.
        env: extra environment variables.
        ready_port: a TCP port on 127.0.0.1 that accepts once the service is up; the next service starts
            only then (at most ``ready_timeout`` seconds later). None: start the next one at once.
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_port: int | None = None
    ready_host: str = "127.0.0.1"
    ready_timeout: float = 30.0


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Seconds before restart number ``attempt`` (0-based): ``initial * 2**attempt``, capped."""
    return float(min(maximum, initial * (2 ** min(attempt, 30))))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    """Runs ``specs`` until SIGINT/SIGTERM (or ``stop()``); returns 0 after a clean stop.

    Args:
        specs: services in start order (stopped in reverse).
        run_dir: where pid files go.
        backoff_initial: first restart delay, seconds (default 0.5).
        backoff_max: largest restart delay, seconds (default 30).
        stable_after: a child that ran this long (seconds, default 10) restarts with the initial delay again.
        grace: seconds between SIGTERM and SIGKILL at stop (default 10).
        out: where prefixed lines go (default stdout).
    """

    def __init__(
        self,
        specs: list[ServiceSpec],
        *,
        run_dir: Path,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        grace: float = 10.0,
        out: TextIO | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.specs = specs
        self.run_dir = run_dir
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.grace = grace
        self.out = out or sys.stdout
        self.on_ready = on_ready
        self.restarts: dict[str, int] = {s.name: 0 for s in specs}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()

    def say(self, name: str, line: str) -> None:
        self.out.write(f"[{name}] {line}\n")
        self.out.flush()

    def stop(self) -> None:
        """Stop every service and return from ``run()``."""
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keepers: list[asyncio.Task[None]] = []
        try:
            for spec in self.specs:
                started = asyncio.Event()
                keepers.append(loop.create_task(self._keep(spec, started)))
                await wait_first(started.wait(), self._stop.wait())
                if spec.ready_port is not None and not self._stop.is_set():
                    await wait_first(self._wait_ready(spec), self._stop.wait())
            if not self._stop.is_set() and self.on_ready is not None:
                self.on_ready()
            await self._stop.wait()
        finally:
            self._stop.set()
            for spec in reversed(self.specs):
                await self._terminate(spec.name)
            await asyncio.gather(*keepers, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        self.say("supervisor", "stopped")
        return 0

    async def _wait_ready(self, spec: ServiceSpec) -> None:
        deadline = time.monotonic() + spec.ready_timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((spec.ready_host, spec.ready_port or 0), timeout=0.5):
                    return
            except OSError:
                await asyncio.sleep(0.1)
        self.say("supervisor", f"{spec.name} is not accepting on port {spec.ready_port} yet; going on")

    async def _keep(self, spec: ServiceSpec, started: asyncio.Event) -> None:
        attempt = 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            except OSError as exc:
                self.say("supervisor", f"cannot start {spec.name}: {exc}")
                proc = None
            if proc is not None:
                self._procs[spec.name] = proc
                (self.run_dir / f"{spec.name}.pid").write_text(str(proc.pid))
                started.set()
                assert proc.stdout is not None
                await self._pump(spec.name, proc.stdout)
                code = await proc.wait()
                if self._stop.is_set():
                    return
                self.say("supervisor", f"{spec.name} exited with status {code}")
            started.set()
            if time.monotonic() - began >= self.stable_after:
                attempt = 0
            delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            attempt += 1
            self.restarts[spec.name] += 1
            self.say("supervisor", f"restarting {spec.name} in {delay:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the reader's limit: print what there is
                line = await stream.read(65536)
            if not line:
                return
            self.say(name, line.decode(errors="replace").rstrip("\n"))

    async def _terminate(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.grace)
        except TimeoutError:
            self.say("supervisor", f"{name} did not stop within {self.grace:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / f"{name}.pid").unlink()
