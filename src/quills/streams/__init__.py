"""quills.streams: one API over Kafka and NATS JetStream, with batch consumers that lose nothing.

```python
from quills.streams import ConsumerOptions, Topic, connect

installs = Topic("installs", Install)                 # a msgspec Struct
async with await connect("kafka://127.0.0.1:9092") as backbone:   # None: the embedded NATS server
    await backbone.publish_many(installs, events, key=lambda e: e.app_id)
    consumer = backbone.consumer(installs, handle, ConsumerOptions(group="reports"), sink=sink)
    await consumer.run()
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quills.streams.backbone import Backbone, Fetched, KeyFn, PositionLoader, Source
from quills.streams.batch import Batch
from quills.streams.connect import connect, parse_broker_url
from quills.streams.consumer import BatchConsumer
from quills.streams.deadletter import DeadLetter
from quills.streams.metrics import ConsumerSnapshot, StreamsCollector
from quills.streams.options import ConsumerOptions, StartFrom
from quills.streams.packing import pack, pack_keyed
from quills.streams.position import Claim, KafkaClaim, NatsClaim, StaleClaimError, covered_upto
from quills.streams.sink import Sink, SqliteSink
from quills.streams.topic import Topic

if TYPE_CHECKING:
    from quills.streams.embedded import EmbeddedNats, nats_server_binary
    from quills.streams.jetstream import NatsBackbone, stream_name
    from quills.streams.kafka import KafkaBackbone
    from quills.streams.postgres import PostgresSink

# Each backend's client library is imported on first use (connect() imports only the one its URL names):
# a Kafka consumer needs neither nats-py (which brings aiohttp) nor psycopg, and those were about half of
# this package's import time, ~0.4 s of CPU at every process start.
_LAZY = {
    "EmbeddedNats": "quills.streams.embedded",
    "nats_server_binary": "quills.streams.embedded",
    "NatsBackbone": "quills.streams.jetstream",
    "stream_name": "quills.streams.jetstream",
    "KafkaBackbone": "quills.streams.kafka",
    "PostgresSink": "quills.streams.postgres",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = (
    # connecting and publishing
    "connect",
    "parse_broker_url",
    "Backbone",
    "KafkaBackbone",
    "NatsBackbone",
    "EmbeddedNats",
    "nats_server_binary",
    "stream_name",
    "Topic",
    "KeyFn",
    "pack",
    "pack_keyed",
    # consuming
    "BatchConsumer",
    "Batch",
    "ConsumerOptions",
    "StartFrom",
    "DeadLetter",
    "ConsumerSnapshot",
    "StreamsCollector",
    # sinks and positions
    "Sink",
    "SqliteSink",
    "PostgresSink",
    "Claim",
    "KafkaClaim",
    "NatsClaim",
    "StaleClaimError",
    "covered_upto",
    # backend protocol
    "Source",
    "Fetched",
    "PositionLoader",
)
