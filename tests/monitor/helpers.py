"""Helpers for the monitor tests: free ports, SSE readers, real servers and instance processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
import pytest
import uvicorn

from brokers import free_port

INSTANCE_SCRIPT = Path(__file__).with_name("instance_main.py")


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
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
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


def ensure_dnsmasq() -> str:
    """Path of Debian's dnsmasq, installing it with apt when missing and running as root.

    Skips only outside CI; with ``CI=true`` a missing DNS server is a failure, never a silent skip.
    """
    found = shutil.which("dnsmasq") or (os.path.exists("/usr/sbin/dnsmasq") and "/usr/sbin/dnsmasq")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "dnsmasq"],
            check=False,
            capture_output=True,
            env=env,
            timeout=600,
        )
        found = shutil.which("dnsmasq") or (os.path.exists("/usr/sbin/dnsmasq") and "/usr/sbin/dnsmasq")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("dnsmasq is missing and could not be installed (apt-get install dnsmasq)")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq)")
    return str(found)


class Dnsmasq:
    """A real DNS server (dnsmasq) on loopback serving the SRV records it is given.

    dnsmasq reads SRV records only at start, so :meth:`serve` restarts it on the same port.
    """

    def __init__(self, workdir: Path) -> None:
        self.binary = ensure_dnsmasq()
        self.port = free_udp_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def serve(self, srv: list[tuple[str, str, int]], hosts: dict[str, str]) -> None:
        """(Re)start with SRV records (name, target, port) and A records (name -> IPv4)."""
        self.stop()
        conf = self.workdir / "dnsmasq.conf"
        lines = [f"srv-host={name},{target},{port},0,10" for name, target, port in srv]
        lines += [f"host-record={name},{address}" for name, address in hosts.items()]
        lines.append("local=/test/")  # authoritative for *.test: unknown names get NXDOMAIN, not REFUSED
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--keep-in-foreground",
                f"--port={self.port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--pid-file=",
                "--user=root",
                f"--conf-file={conf}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dnsmasq exited: {err}")
            if time.monotonic() > deadline:
                raise RuntimeError("dnsmasq did not answer")
            time.sleep(0.05)

    def _answers(self) -> bool:
        import dns.exception
        import dns.message
        import dns.query

        try:
            query = dns.message.make_query("probe.invalid.", "A")
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
