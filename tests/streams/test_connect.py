"""connect(url): the URL picks the backend; malformed URLs are clear ConfigErrors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

from quills.errors import ConfigError, StreamError
from quills.streams import KafkaBackbone, NatsBackbone, connect, parse_broker_url


@pytest.mark.parametrize(
    "url,expected",
    [
        ("kafka://127.0.0.1:9092", ("kafka", "127.0.0.1:9092")),
        ("kafka://a:1,b:2/", ("kafka", "a:1,b:2")),
        ("nats://localhost:4222", ("nats", "localhost:4222")),
    ],
)
def test_valid_urls_split_into_scheme_and_hosts(url: str, expected: tuple[str, str]) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url,message",
    [
        ("redis://x:1", "must start with kafka:// or nats://"),
        ("127.0.0.1:9092", "must start with"),
        ("kafka://host", "not host:port"),
        ("nats://h:99999", "outside 1-65535"),
        ("kafka://", "not host:port"),
    ],
)
def test_malformed_urls_raise_config_error_saying_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        asyncio.run(connect(url))


def test_kafka_and_nats_urls_choose_their_backend(kafka_url: str, nats_url: str) -> None:
    async def scenario() -> tuple[object, object]:
        kafka, nats = await connect(kafka_url), await connect(nats_url)
        await kafka.close()
        await nats.close()
        return kafka, nats

    kafka, nats = asyncio.run(scenario())
    assert isinstance(kafka, KafkaBackbone) and isinstance(nats, NatsBackbone)


def test_no_url_starts_the_embedded_server_and_close_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUILLS_BROKER", raising=False)
    port = free_port()

    async def scenario() -> None:
        backbone = await connect(None, data_dir=tmp_path, port=port)
        assert isinstance(backbone, NatsBackbone)
        assert backbone.url == f"nats://127.0.0.1:{port}"
        await backbone.close()

    asyncio.run(scenario())
    assert (tmp_path / "nats").is_dir()
    with pytest.raises(StreamError, match="cannot connect"):
        asyncio.run(connect(f"nats://127.0.0.1:{port}"))


def test_quills_broker_env_var_is_used_when_no_url_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUILLS_BROKER", "bogus://x")
    with pytest.raises(ConfigError, match="bogus://x"):
        asyncio.run(connect())


def test_the_package_imports_no_backend_client_until_a_backend_is_used() -> None:
    # Process start-up CPU: a Kafka consumer should not pay for importing nats-py, aiohttp and psycopg.
    code = (
        "import sys, quills.streams as s\n"
        "clients = ('confluent_kafka', 'nats', 'aiohttp', 'psycopg')\n"
        "print(sorted(c for c in clients if c in sys.modules))\n"
        "from quills.streams import KafkaBackbone\n"
        "print(sorted(c for c in clients if c in sys.modules), KafkaBackbone.__module__)\n"
        "print(s.PostgresSink.__module__, s.NatsBackbone.__module__, s.EmbeddedNats.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "[]",
        "['confluent_kafka'] quills.streams.kafka",
        "quills.streams.postgres quills.streams.jetstream quills.streams.embedded",
    ]
