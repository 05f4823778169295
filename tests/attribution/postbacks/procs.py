"""Real processes for the postbacks tests: receivers, the Postbacks service, a NATS server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from ..helpers import free_port, wait_port

RECEIVER = str(Path(__file__).with_name("receiver.py"))


class ReceiverProcess:
    """``receiver.py`` on a free port; ``received()`` lists what arrived."""

    def __init__(
        self, directory: Path, name: str, mode: str = "ok", *, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.port = free_port()
        self.log = directory / f"{name}.jsonl"
        self.log.touch()
        self.name = name
        self.mode = mode
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable,
            RECEIVER,
            "--port",
            str(self.port),
            "--log",
            str(self.log),
            "--mode",
            self.mode,
        ]
        if self.tls:
            argv += ["--tls", str(self.tls[0]), str(self.tls[1])]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 30, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        httpx.post(f"{self.url}/_mode/{mode}", timeout=5, verify=False)

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


class PostbacksProcess:
    """``python -m quills.attribution.postbacks`` with a test environment."""

    def __init__(
        self, directory: Path, db: str, broker: str, *, retry_base: float = 0.2, retry_cap: float = 1.0
    ) -> None:
        self.port = free_port()
        self.out = open(directory / "postbacks.log", "ab")
        self.env = {
            **os.environ,
            "QUILLS_DB": db,
            "QUILLS_BROKER": broker,
            "QUILLS_POSTBACK_ALLOW": "127.0.0.0/8",
            "QUILLS_POSTBACK_RETRY_BASE": str(retry_base),
            "QUILLS_POSTBACK_RETRY_CAP": str(retry_cap),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "postbacks.log"
        self.start()

    def start(self) -> None:
        argv = [sys.executable, "-m", "quills.attribution.postbacks", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=self.env)
        wait_port(self.port, 60, self.proc)

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10).json()
        return data

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
