"""The partner client against a real receiver: 2xx sent, 5xx/429 retryable, SSRF refused at send time
(private IPs, names resolving to them), redirects never followed, a hung partner cut at its timeout;
keep-alive reuse, answers of every shape, POST bodies, no header injection, TLS checked."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from quills.attribution.config import TargetPolicy, UnsafeTarget
from quills.attribution.postbacks import PartnerClient, PermanentResponse, RetryableResponse
from quills.attribution.postbacks.client import TransportError
from quills.attribution.postbacks.sinks import Due

from .procs import ReceiverProcess


def due(
    url: str,
    timeout: float = 2.0,
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> Due:
    return Due("p1", "r1", "net", "app1", method, url, body, headers or {}, timeout, 5, 0, 2**62)


def send(policy: TargetPolicy, url: str, timeout: float = 2.0) -> object:
    return send_all(policy, [due(url, timeout)])[0]


def send_all(policy: TargetPolicy, dues: list[Due], **client_options: Any) -> list[object]:
    """Send ``dues`` one after the other through one client; each result, or the exception raised."""

    async def run() -> list[object]:
        client = PartnerClient(policy, **client_options)
        out: list[object] = []
        try:
            for d in dues:
                try:
                    out.append(await client.send(d))
                except Exception as exc:
                    if len(dues) == 1:
                        raise
                    out.append(exc)
            return out
        finally:
            await client.aclose()

    return asyncio.run(run())


def status(result: object) -> int | None:
    return getattr(result, "status_code", None)


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


def test_a_deadline_the_caller_enforces_replaces_the_clients_own_only_when_it_is_no_later(
    tmp_path: Path,
) -> None:
    r = ReceiverProcess(tmp_path, "r", mode="hang")

    async def cut_by_caller(client: PartnerClient, d: Due, enforced_s: float, caller_s: float) -> bool:
        """Send ``d`` to the hung receiver under the caller's own deadline: did the caller's cut end it?"""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(caller_s) as caller:
                await client.send(d, enforced_s)
        return caller.expired()

    async def run() -> tuple[bool, bool, object]:
        client = PartnerClient(LOOPBACK)
        try:
            # the caller enforces 10 s, later than the delivery's 0.3 s: the client's own timer cuts it
            later = await cut_by_caller(client, due(r.url + "/pb?id=1", 0.3), 10.0, 5.0)
            # the caller enforces 0.3 s (a command's timeout): the client sets no timer of its own
            same = await cut_by_caller(client, due(r.url + "/pb?id=2", 0.3), 0.3, 0.6)
            r.set_mode("ok")
            return later, same, await client.send(due(r.url + "/pb?id=3", 0.3), 0.3)
        finally:
            await client.aclose()

    try:
        later, same, after = asyncio.run(run())
    finally:
        r.kill()
    assert (later, same) == (False, True)
    assert status(after) == 200  # a send cut by its caller leaves the pool usable


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


def test_keep_alive_sends_one_after_another_over_one_connection(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        results = send_all(LOOPBACK, [due(f"{r.url}/pb?id={i}") for i in range(5)])
        assert [status(x) for x in results] == [200] * 5
        assert len({x["conn"] for x in r.received()}) == 1
    finally:
        r.kill()


def test_a_connection_closed_while_idle_is_replaced_and_the_request_sent_again(tmp_path: Path) -> None:
    # the receiver answers the first request of each connection and closes it on the second, unanswered
    r = ReceiverProcess(tmp_path, "r", mode="once")
    try:
        results = send_all(LOOPBACK, [due(f"{r.url}/pb?id={i}") for i in range(3)])
        assert [status(x) for x in results] == [200] * 3
        got = r.received()
        assert [x["target"] for x in got] == ["/pb?id=0", "/pb?id=1", "/pb?id=2"]
        assert len({x["conn"] for x in got}) == 3
    finally:
        r.kill()


@pytest.mark.parametrize("mode", ["chunked", "eof", "interim", "late"])
def test_answers_of_every_shape_are_read(tmp_path: Path, mode: str) -> None:
    r = ReceiverProcess(tmp_path, "r", mode=mode)
    try:
        results = send_all(LOOPBACK, [due(f"{r.url}/pb?id={i}") for i in range(3)])
        assert [status(x) for x in results] == [200] * 3
        conns = [x["conn"] for x in r.received()]
        # a connection the answer closed is not reused; the others are
        assert len(set(conns)) == (3 if mode == "eof" else 1)
    finally:
        r.kill()


def test_an_answer_that_is_not_http_is_a_transport_error(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r", mode="garbage")
    try:
        with pytest.raises(TransportError):
            send(LOOPBACK, r.url + "/pb")
    finally:
        r.kill()


def test_post_sends_its_body_and_headers(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        body = '{"click": "c1", "name": "caf\u00e9"}'
        headers = {"Content-Type": "application/json", "X-Partner-Key": "k1"}
        (result,) = send_all(LOOPBACK, [due(r.url + "/pb", method="POST", body=body, headers=headers)])
        assert status(result) == 200
        (got,) = r.received()
        assert got["method"] == "POST" and got["body"] == body
        assert got["headers"]["content-type"] == "application/json"
        assert got["headers"]["x-partner-key"] == "k1"
        assert got["headers"]["content-length"] == str(len(body.encode()))
        assert got["headers"]["user-agent"] == "quills-postbacks/1"
    finally:
        r.kill()


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "1\r\nX-Injected: 1"}, {"X-A\r\nX-Injected": "1"}, {"Host": "evil.example"}],
)
def test_header_lines_cannot_be_added_or_overridden(tmp_path: Path, headers: dict[str, str]) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        with pytest.raises(UnsafeTarget):
            send_all(LOOPBACK, [due(r.url + "/pb", headers=headers)])
        assert r.received() == []
    finally:
        r.kill()


def test_a_target_is_sent_percent_encoded_where_it_must_be(tmp_path: Path) -> None:
    r = ReceiverProcess(tmp_path, "r")
    try:
        results = send_all(LOOPBACK, [due(r.url + "/p q?n=caf\u00e9&x=%41#frag"), due(r.url + "?a=1")])
        assert [status(x) for x in results] == [200, 200]
        assert [x["target"] for x in r.received()] == ["/p%20q?n=caf%C3%A9&x=%41", "/?a=1"]
    finally:
        r.kill()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (made with the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    argv = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost"
    argv += " -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
    subprocess.run(
        ["openssl", *argv.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


def test_https_checks_the_certificate_of_the_name_it_connects_for(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    r = ReceiverProcess(tmp_path, "r", tls=certificate)
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    policy = TargetPolicy.parse("127.0.0.0/8,::1/128")
    try:
        by_ip, by_name = f"https://127.0.0.1:{r.port}/pb?id=1", f"https://localhost:{r.port}/pb?id=2"
        results = send_all(policy, [due(by_ip), due(by_name)], ssl_context=trusting)
        assert [status(x) for x in results] == [200, 200]
        assert [x["host"] for x in r.received()] == [f"127.0.0.1:{r.port}", f"localhost:{r.port}"]
        # the default context does not trust a self-signed certificate: nothing is sent
        with pytest.raises(TransportError):
            send(policy, by_ip)
        assert len(r.received()) == 2
    finally:
        r.kill()
