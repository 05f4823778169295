"""Helpers of the dashboard tests: free ports, a uvicorn thread, real instance and aggregator processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

# shared with the monitor tests (pytest puts tests/ on the path, so both packages import by name)
from monitor.helpers import UvicornThread as UvicornThread  # re-exported for the dashboard tests
from monitor.helpers import free_port

INSTANCE_APP = Path(__file__).with_name("instance_app.py")
CHROMIUM = "/usr/bin/chromium"
#: per-test timeout of the browser tests: the first one may have to apt-get install chromium
BROWSER_TIMEOUT = 120 if os.path.exists(CHROMIUM) else 900


class Process:
    """A child process that is killed (SIGKILL, then reaped) by :meth:`stop`."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class InstanceApp(Process):
    """tests/dashboard/instance_app.py: three commands in a loop, ``charge`` failing while a file exists."""

    def __init__(self, fail_file: Path) -> None:
        super().__init__([sys.executable, str(INSTANCE_APP), "--fail-file", str(fail_file)])
        self.fail_file = fail_file
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith("port "):
            self.stop()
            raise RuntimeError(f"instance did not start: {first!r}")
        self.port = int(first.split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def fail(self, failing: bool) -> None:
        """Make ``charge``'s dependency fail (True) or recover (False)."""
        _flag(self.fail_file, failing)

    def slow(self, slow: bool) -> None:
        """Make each ``charge`` call take 2 s (True) or 2 ms (False)."""
        _flag(self.fail_file.with_name(self.fail_file.name + ".slow"), slow)


def _flag(path: Path, on: bool) -> None:
    if on:
        path.touch()
    else:
        path.unlink(missing_ok=True)


class Aggregator(Process):
    """A real ``quills monitor`` process over the given instances, in one cluster."""

    def __init__(self, instances: list[str], cluster: str) -> None:
        self.port = free_port()
        super().__init__(
            [
                sys.executable,
                "-m",
                "quills.cli",
                "monitor",
                "--instance",
                ",".join(instances),
                "--cluster",
                cluster,
                "--port",
                str(self.port),
            ]
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("quills monitor did not start")
            time.sleep(0.1)
