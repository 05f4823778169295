"""The partner client against a real receiver: 2xx sent, 5xx/429 retryable, SSRF refused at send time
(private IPs, names resolving to them), redirects never followed, a hung partner cut at its timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quills.attribution.config import TargetPolicy, UnsafeTarget
from quills.attribution.postbacks import PartnerClient, PermanentResponse, RetryableResponse
from quills.attribution.postbacks.client import TransportError
from quills.attribution.postbacks.sinks import Due

from .procs import ReceiverProcess


def due(url: str, timeout: float = 2.0) -> Due:
    return Due("p1", "r1", "net", "app1", "GET", url, None, {}, timeout, 5, 0, 2**62)


def send(policy: TargetPolicy, url: str, timeout: float = 2.0) -> object:
    async def run() -> object:
        client = PartnerClient(policy)
        try:
            return await client.send(due(url, timeout))
        finally:
            await client.aclose()

    return asyncio.run(run())


LOOPBACK = TargetPolicy.parse("127.0.0.0/8")


def test_answers_map_to_sent_retryable_and_permanent(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        assert getattr(send(LOOPBACK, r.url + "/pb?id=1"), "status_code", None) == 200
        r.set_mode("fail")
        with pytest.raises(RetryableResponse):
            send(LOOPBACK, r.url + "/pb")
        r.set_mode("429")
        with pytest.raises(RetryableResponse) as info:
            send(LOOPBACK, r.url + "/pb")
        assert info.value.retry_after == "1"
        r.set_mode("close")
        with pytest.raises(TransportError):
            send(LOOPBACK, r.url + "/pb")
        r.set_mode("hang")
        with pytest.raises(TransportError):
            send(LOOPBACK, r.url + "/pb", timeout=0.3)
    finally:
        r.kill()


def test_redirects_are_never_followed(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r", mode="redirect")
    try:
        with pytest.raises(PermanentResponse) as info:
            send(LOOPBACK, r.url + "/pb?id=1")
        assert info.value.status_code == 302
        assert [x["target"] for x in r.received()] == ["/pb?id=1"]  # /redirected never requested
    finally:
        r.kill()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/pb",  # loopback, not allow-listed here
        "http://localhost:{port}/pb",  # a DNS name that resolves to loopback
        "http://[::ffff:127.0.0.1]:{port}/pb",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/pb",
    ],
)
def test_private_targets_are_refused_at_send_time(tmp_path: Path, url: str) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        with pytest.raises(UnsafeTarget):
            send(TargetPolicy(), url.format(port=r.port))
        assert r.received() == []
    finally:
        r.kill()
