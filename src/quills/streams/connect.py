"""``connect(url)``: the broker URL chooses the backend; no URL means the embedded NATS server."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from quills.errors import ConfigError
from quills.streams.backbone import Backbone

__all__ = ("connect", "parse_broker_url")

_HOSTPORT = re.compile(r"^[A-Za-z0-9._-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$")


def parse_broker_url(url: str) -> tuple[str, str]:
    """Split ``kafka://h:p[,h:p]`` or ``nats://h:p[,h:p]`` into ``(scheme, "h:p,...")``.

    Raises ``ConfigError`` naming what is wrong (scheme, missing port, bad port).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("kafka", "nats"):
        raise ConfigError(f"broker URL {url!r} must start with kafka:// or nats://")
    hosts = [h.strip() for h in rest.rstrip("/").split(",")]
    for host in hosts:
        if not _HOSTPORT.match(host):
            raise ConfigError(f"broker URL {url!r}: {host!r} is not host:port")
        port = int(host.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ConfigError(f"broker URL {url!r}: port {port} is outside 1-65535")
    return scheme, ",".join(hosts)


async def connect(
    url: str | None = None,
    *,
    data_dir: str | Path | None = None,
    port: int = 4222,
    kafka_config: dict[str, Any] | None = None,
    nats_compression: bool = True,
) -> Backbone:
    """Connect to the message log.

    Args:
        url: ``kafka://host:port[,host:port]`` (confluent-kafka) or ``nats://host:port[,...]`` (JetStream).
            None reads ``QUILLS_BROKER``; when that is unset too, quills starts (or reuses) the embedded
            NATS server on 127.0.0.1:``port`` with its store in ``data_dir``.
        data_dir: the embedded server's data directory (default ``QUILLS_DATA_DIR`` or ``./.quills``).
        port: the embedded server's port, 1-65535 (default 4222).
        kafka_config: extra librdkafka settings for producer and consumers (TLS, SASL, ...).
        nats_compression: NATS only: store packed messages as zstd frames (default True;
            ``quills.streams.compression``).

    Raises ``ConfigError`` for a malformed URL or a taken port, ``StreamError`` if the broker is unreachable.
    """
    if url is None:
        url = os.environ.get("QUILLS_BROKER") or None
    if url is None:
        from quills.streams.embedded import EmbeddedNats
        from quills.streams.jetstream import NatsBackbone

        where = data_dir or os.environ.get("QUILLS_DATA_DIR") or ".quills"
        server = EmbeddedNats(where, port=port)
        await asyncio.to_thread(server.start)
        try:
            owned = None if server.reused else server
            return await NatsBackbone.connect(server.url, owned=owned, compression=nats_compression)
        except BaseException:
            await asyncio.to_thread(server.stop)
            raise
    scheme, hosts = parse_broker_url(url)
    if scheme == "kafka":
        from quills.streams.kafka import KafkaBackbone

        extra = kafka_config or {}
        return KafkaBackbone(hosts, producer_config=extra, consumer_config=extra)
    from quills.streams.jetstream import NatsBackbone

    urls = ",".join(f"nats://{h}" for h in hosts.split(","))
    return await NatsBackbone.connect(urls, compression=nats_compression)
