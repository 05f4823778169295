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

from quills.streams.backbone import Backbone, Fetched, KeyFn, PositionLoader, Source
from quills.streams.batch import Batch
from quills.streams.connect import connect, parse_broker_url
from quills.streams.consumer import BatchConsumer
from quills.streams.deadletter import DeadLetter
from quills.streams.embedded import EmbeddedNats, nats_server_binary
from quills.streams.jetstream import NatsBackbone, stream_name
from quills.streams.kafka import KafkaBackbone
from quills.streams.metrics import ConsumerSnapshot, StreamsCollector
from quills.streams.options import ConsumerOptions, StartFrom
from quills.streams.packing import pack, pack_keyed
from quills.streams.position import Claim, KafkaClaim, NatsClaim, StaleClaimError, covered_upto
from quills.streams.postgres import PostgresSink
from quills.streams.sink import Sink, SqliteSink
from quills.streams.topic import Topic

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
