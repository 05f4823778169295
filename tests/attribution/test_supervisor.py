"""The supervisor: prefixed output, restarts with growing delays, clean stop of every child."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from quills.attribution.supervisor import ServiceSpec, Supervisor, backoff_delay


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(a, 0.5, 4.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_crashing_service_is_restarted_with_backoff_and_lines_are_prefixed(tmp_path: Path) -> None:
    out = io.StringIO()
    crash = ServiceSpec("crasher", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"])
    sleeper = ServiceSpec(
        "sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    )
    supervisor = Supervisor(
        [crash, sleeper], run_dir=tmp_path, backoff_initial=0.05, backoff_max=0.2, grace=5, out=out
    )

    pids: list[int] = []

    async def scenario() -> int:
        task = asyncio.ensure_future(supervisor.run())
        await asyncio.sleep(1.5)
        pids.append(int((tmp_path / "sleeper.pid").read_text()))
        supervisor.stop()
        return await task

    assert asyncio.run(scenario()) == 0
    assert not Path(f"/proc/{pids[0]}").exists() or _is_zombie(pids[0])
    text = out.getvalue()
    assert "[crasher] hello" in text and "[sleeper] up" in text
    assert "[supervisor] crasher exited with status 3" in text
    assert supervisor.restarts["crasher"] >= 3 and supervisor.restarts["sleeper"] == 0
    assert "restarting crasher in 0.1s" in text and "restarting crasher in 0.2s" in text
    assert text.rstrip().endswith("[supervisor] stopped")
    assert not (tmp_path / "sleeper.pid").exists()


def test_a_service_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    stubborn = ServiceSpec(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
    )
    out = io.StringIO()
    supervisor = Supervisor([stubborn], run_dir=tmp_path, grace=0.5, out=out)

    async def scenario() -> None:
        task = asyncio.ensure_future(supervisor.run())
        await asyncio.sleep(0.8)
        supervisor.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert "did not stop within" in out.getvalue()


def _is_zombie(pid: int) -> bool:
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
