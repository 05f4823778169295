"""The ingest service as a real process against a real NATS JetStream server: every status the API
documents, its OpenAPI document, health and live metrics, the broker going away, and fuzzing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quills.attribution.apps import bootstrap
from quills.attribution.db import Database
from quills.streams import EmbeddedNats

from .helpers import event, free_port, wait_port

APPS = [("com.example.one", "android"), ("id1234567890", "ios")]


@dataclass
class Ingest:
    url: str
    creds: dict[str, Any]
    proc: subprocess.Popen[bytes]
    nats: EmbeddedNats

    def key(self, app: str = "com.example.one") -> dict[str, str]:
        return {"authorization": f"Bearer {self.creds['apps'][app]['key']}"}


def start_ingest(tmp: Path) -> Ingest:
    nats = EmbeddedNats(tmp / "nats", port=free_port())
    nats.start()
    creds, _ = bootstrap(Database(str(tmp / "quills.db")), tmp, APPS)
    port = free_port()
    env = {
        **os.environ,
        "QUILLS_BROKER": nats.url,
        "QUILLS_DATA_DIR": str(tmp),
        "QUILLS_DB": str(tmp / "quills.db"),
    }
    argv = [sys.executable, "-m", "quills.attribution.ingest", "--port", str(port), "--publish-timeout", "1"]
    with open(tmp / "ingest.log", "ab") as log:
        proc = subprocess.Popen(argv, env=env, stderr=log)
    wait_port(port, 30, proc)
    return Ingest(f"http://127.0.0.1:{port}", creds, proc, nats)


def stop_ingest(ingest: Ingest) -> None:
    ingest.proc.terminate()
    ingest.proc.wait(20)
    ingest.nats.stop()


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    running = start_ingest(tmp_path_factory.mktemp("ingest"))
    yield running
    assert running.proc.poll() is None, "ingest died during the tests"
    stop_ingest(running)


def post(
    ingest: Ingest, path: str, body: Any, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    h = {"content-type": "application/json", **ingest.key(), **(headers or {})}
    return httpx.post(ingest.url + path, content=content, headers=h, timeout=30, **kw)


def test_an_event_and_a_batch_are_accepted_once_durable(ingest: Ingest) -> None:
    response = post(ingest, "/v1/events", event("com.example.one", event_type="install"))
    assert response.status_code == 202 and response.json() == {"accepted": 1}
    batch = [event("com.example.one", event_type=t) for t in ("session", "in_app", "uninstall")]
    assert post(ingest, "/v1/events/batch", batch).json() == {"accepted": 3}
    ndjson = b"\n".join(msgspec.json.encode(e) for e in batch)
    response = post(ingest, "/v1/events/batch", ndjson, {"content-type": "application/x-ndjson"})
    assert response.status_code == 202 and response.json() == {"accepted": 3}
    health = httpx.get(ingest.url + "/healthz").json()
    assert health["published_events"] >= 7 and health["broker_circuit"] == "closed"


def test_pipelined_requests_are_answered_whole_and_in_order_and_close_comes_last(ingest: Ingest) -> None:
    # The service writes each response at once (status line, headers and body in one write); requests
    # sent back to back on one connection must still get complete answers, in order, and a request
    # asking to close gets its answer before the connection closes.
    import socket

    port = int(ingest.url.rsplit(":", 1)[1])
    key = ingest.key()["authorization"]
    requests = b""
    for i, app_event in enumerate(
        event("com.example.one", event_type=t) for t in ("install", "session", "in_app")
    ):
        body = msgspec.json.encode(app_event)
        close = b"connection: close\r\n" if i == 2 else b""
        requests += (
            b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (key.encode(), len(body), close, body)
        )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(requests)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"202"] * 3
    assert all(a.endswith(b'\r\n\r\n{"accepted":1}') for a in answers)


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"authorization": ""}, 401, "unauthorized"),
        ({"authorization": "Bearer qi_unknown"}, 401, "unauthorized"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        ({"content-type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_auth_and_media_type_errors(ingest: Ingest, headers: dict[str, str], status: int, error: str) -> None:
    response = post(ingest, "/v1/events", event("com.example.one"), headers)
    assert response.status_code == status and response.json()["error"] == error
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_app_key_may_only_send_its_own_events(ingest: Ingest) -> None:
    response = post(ingest, "/v1/events/batch", [event("com.example.one"), event("id1234567890", "ios")])
    assert response.status_code == 403
    assert response.json()["errors"] == [{"index": 1, "path": "$.app_id", "reason": "not 'com.example.one'"}]
    admin = {"authorization": f"Bearer {ingest.creds['admin_key']}"}
    assert post(ingest, "/v1/events", event("com.example.one"), admin).status_code == 401


def test_oversize_bodies_and_batches_get_413(ingest: Ingest) -> None:
    huge = b"[" + b" " * (1 << 20) + b"]"
    assert post(ingest, "/v1/events/batch", huge).status_code == 413
    many = [event("com.example.one")] * 1001
    response = post(ingest, "/v1/events/batch", many)
    assert response.status_code == 413 and "at most 1000" in response.json()["detail"]


def test_validation_errors_name_each_event_and_field(ingest: Ingest) -> None:
    batch = [event("com.example.one"), event("com.example.one", event_time="yesterday"), {"event_type": "x"}]
    response = post(ingest, "/v1/events/batch", batch)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed" and body["detail"].startswith("2 of 3 events are invalid")
    assert [(e["index"], e["path"]) for e in body["errors"]] == [(1, "$.event_time"), (2, "$.event_type")]
    assert "Expected `int`, got `str`" in body["errors"][0]["reason"]
    single = post(ingest, "/v1/events", {**event("com.example.one"), "platform": "symbian"})
    assert single.status_code == 422 and single.json()["errors"][0]["path"] == "$.platform"
    assert post(ingest, "/v1/events", b"{oops").status_code == 400
    assert httpx.get(ingest.url + "/v1/events").status_code == 405


def test_openapi_health_and_live_metrics_are_served(ingest: Ingest) -> None:
    doc = httpx.get(ingest.url + "/openapi.json").json()
    assert set(doc["paths"]) >= {"/v1/events", "/v1/events/batch"}
    assert "x-personal-data" in str(doc["components"]["schemas"]["Install"]["properties"]["device_id"])
    assert httpx.get(ingest.url + "/healthz").json()["status"] == "ok"
    assert post(ingest, "/v1/events", event("com.example.one")).status_code == 202
    metrics = httpx.get(ingest.url + "/metrics").text
    assert 'quills_command_requests{command="ingest.publish"' in metrics
    assert 'quills_ingest_requests_total{status="202"}' in metrics
    assert "quills_ingest_events_accepted_total" in metrics
    with httpx.stream("GET", ingest.url + "/hystrix.stream", timeout=10) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                assert '"name":"ingest.publish"' in line or "quills_status" in line
                break


def test_fuzzing_from_the_openapi_document_finds_no_server_error(ingest: Ingest) -> None:
    schema = schemathesis.openapi.from_url(ingest.url + "/openapi.json")
    auth = ingest.key()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call(base_url=ingest.url, headers=auth)
            assert response.status_code < 500, (case.body, response.text)
            if response.status_code >= 400:
                assert response.json()["error"] and response.json()["detail"]

        call()
    assert httpx.get(ingest.url + "/healthz").status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)


@given(
    path=st.sampled_from(["/v1/events", "/v1/events/batch"]),
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(msgspec.json.encode),
        st.fixed_dictionaries(
            dict.fromkeys(("event_type", "event_id", "app_id", "event_time", "platform"), json_values)
        ).map(msgspec.json.encode),
    ),
    content_type=st.sampled_from(
        ["application/json", "application/x-ndjson", "text/plain", "", "application/json; x=1"]
    ),
    authorization=st.sampled_from(["good", "", "Bearer", "Bearer x", "Bearer \u00ff"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_arbitrary_bodies_and_headers_get_clear_4xx(
    ingest: Ingest, path: str, body: bytes, content_type: str, authorization: str
) -> None:
    headers = {"content-type": content_type.encode()}
    auth = ingest.key()["authorization"] if authorization == "good" else authorization
    headers["authorization"] = auth.encode("latin-1")  # raw bytes on the wire, as a broken client sends
    response = httpx.post(ingest.url + path, content=body, headers=headers, timeout=30)
    assert response.status_code in (202, 400, 401, 403, 413, 415, 422), response.text
    if response.status_code != 202:
        problem = response.json()
        assert problem["error"] and problem["detail"]


def test_without_a_broker_requests_get_503_with_retry_after_fast(tmp_path: Path) -> None:
    ingest = start_ingest(tmp_path)
    try:
        assert post(ingest, "/v1/events", event("com.example.one")).status_code == 202
        ingest.nats.stop()
        outcomes = []
        for _ in range(12):
            started = time.monotonic()
            response = post(ingest, "/v1/events", event("com.example.one"))
            outcomes.append((response.json()["detail"], time.monotonic() - started))
            assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
            assert "nothing was accepted" in response.json()["detail"]
        assert max(t for _d, t in outcomes) < 2.5  # publish timeout 1 s: never hangs
        # The circuit opened: the last requests were refused without trying the broker (not timed: a
        # loaded machine makes even an immediate refusal take a while).
        assert "circuit open" in outcomes[-1][0], outcomes[-1][0]
        assert httpx.get(ingest.url + "/healthz").json()["broker_circuit"] == "open"
    finally:
        stop_ingest(ingest)
