"""Helpers of the platform tests: ``quills up`` (broker, ingest, API, monitor) in a temp data
directory on free ports, a real NATS JetStream server, SQLite or a fresh PostgreSQL database, HTTP on
loopback. Nothing is mocked here; unit tests of pure logic build their inputs directly."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from brokers import free_port
from quills.attribution.events import EventView

HOUR = 3_600_000
T0 = 1_763_769_600_000  # 2025-11-22T00:00Z, the hour the reports tests' events start in


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"process exited with {proc.returncode} before port {port} opened"
                ) from None
            time.sleep(0.05)
    raise TimeoutError(f"nothing accepts on port {port} after {timeout}s")


class Platform:
    """``quills up`` running in ``data_dir``; ``kill(name)`` SIGKILLs one service (the supervisor
    restarts it)."""

    def __init__(self, data_dir: Path, *, db: str = "", broker: str = "", demo_apps: int = 20) -> None:
        self.data_dir = data_dir
        self.ingest_port, self.api_port, self.monitor_port, self.broker_port = (free_port() for _ in range(4))
        self.postbacks_port = free_port()
        self.log = data_dir.parent / f"{data_dir.name}-up.log"
        argv = [
            str(Path(sys.executable).parent / "quills"),
            "up",
            "--data-dir",
            str(data_dir),
            "--ingest-port",
            str(self.ingest_port),
            "--api-port",
            str(self.api_port),
            "--monitor-port",
            str(self.monitor_port),
            "--broker-port",
            str(self.broker_port),
            "--postbacks-port",
            str(self.postbacks_port),
            "--demo-apps",
            str(demo_apps),
        ]
        if db:
            argv += ["--db", db]
        if broker:
            argv += ["--broker", broker]
        env = {
            k: v for k, v in os.environ.items() if k not in ("QUILLS_BROKER", "QUILLS_DB", "QUILLS_DATA_DIR")
        }
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        for port in ((self.broker_port,) if not broker else ()) + (self.ingest_port, self.api_port):
            wait_port(port, 60, self.proc)
        self.creds: dict[str, Any] = json.loads((data_dir / "credentials.json").read_text())
        self.ingest = f"http://127.0.0.1:{self.ingest_port}"
        self.api = f"http://127.0.0.1:{self.api_port}"

    @property
    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.creds['admin_key']}"}

    def app_key(self, app_id: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.creds['apps'][app_id]['key']}"}

    def pid(self, name: str) -> int:
        return int((self.data_dir / "run" / f"{name}.pid").read_text())

    def kill(self, name: str, port: int | None = None) -> None:
        """SIGKILL service ``name`` and wait until the supervisor has it running again."""
        old = self.pid(name)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.pid(name) != old:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{name} was not restarted")
        if port is not None:
            wait_port(port, 60)

    def report(self, **params: str) -> dict[str, Any]:
        today = dt.datetime.now(dt.UTC).date()
        query = {"from": (today - dt.timedelta(days=30)).isoformat(), "to": today.isoformat(), "group_by": ""}
        query.update(params)
        response = httpx.get(f"{self.api}/v1/reports", params=query, headers=self.admin, timeout=60)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def total_events(self) -> int:
        rows = self.report()["rows"]
        return int(rows[0]["events"]) if rows else 0

    def wait_complete(self, since_ms: int, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until ``data_complete_until`` passes ``since_ms``; return that report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.report()
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            until = data["data_complete_until"]
            if until is not None and dt.datetime.fromisoformat(until).timestamp() * 1000 > since_ms:
                return data
            time.sleep(0.2)
        raise TimeoutError(f"data_complete_until did not pass {since_ms}: {self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._out.close()
        return code


def event(
    app_id: str, platform: str = "android", *, event_type: str = "session", **fields: Any
) -> dict[str, Any]:
    """A valid event of ``app_id`` (now, organic, one device), with ``fields`` overriding."""
    now = int(time.time() * 1000)
    e: dict[str, Any] = {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "app_id": app_id,
        "platform": platform,
        "event_time": now,
        "sdk_version": "6.14.2",
        "os_version": "14",
        "device_id": "device-1",
        "media_source": "organic",
        "country_code": "US",
    }
    if event_type in ("session", "in_app"):
        e["install_time"] = now - 86_400_000
    if event_type == "in_app":
        e["event_name"] = "af_level_achieved"
    e.update(fields)
    return e


def view(**fields: object) -> EventView:
    """A session event as the Reports service decodes it, at ``T0``; ``fields`` override or add."""
    base: dict[str, object] = {
        "event_type": "session",
        "app_id": "a",
        "platform": "ios",
        "event_time": T0,
        "device_id": "d1",
        "media_source": "organic",
    }
    base.update(fields)
    return msgspec.convert(base, EventView)
