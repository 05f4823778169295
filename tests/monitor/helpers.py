"""Helpers for the monitor tests: free ports, SSE readers, real servers and instance processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

INSTANCE_SCRIPT = Path(__file__).with_name("instance_main.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_events(url: str, *, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The first ``count`` JSON ``data:`` events of an SSE stream."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.status_code
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if len(events) >= count:
                    break
    return events


def read_until(
    url: str, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 15.0
) -> dict[str, Any]:
    """The first ``data:`` event of a stream for which ``predicate`` holds (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.status_code
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"no matching event on {url} within {timeout}s")


class UvicornThread:
    """A real uvicorn server on loopback, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class InstanceProcess:
    """A real quills instance process (tests/monitor/instance_main.py) serving its stream."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(INSTANCE_SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith("port "):
            self.kill()
            raise RuntimeError(
                f"instance did not start: {first!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.port = int(first.split()[1])
        self.snapshot: dict[str, Any] = json.loads(self.proc.stdout.readline())

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hystrix.stream"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
