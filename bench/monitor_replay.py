"""Replays N instance streams for the aggregator benchmark: ``monitor_replay.py PORT N COMMANDS``.

Serves ``/i<n>/hystrix.stream`` on one port. Each instance sends the documents of a real registry with
COMMANDS commands (plus their pools) every 0.5 s and a ping; its counters change every tick (4 prepared
variants per instance, cycled), so the aggregator does real work on each document.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from quills.monitor.hystrix_format import encode_events
from quills.monitor.tick import tick_documents

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from monitor import _registry  # the benchmark's own registry builder

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


def _variants(docs: list[dict[str, Any]], instance: int) -> list[bytes]:
    out = []
    for variant in range(4):
        changed = []
        for doc in docs:
            doc = dict(doc)
            if doc["type"] == "HystrixCommand":
                doc["rollingCountSuccess"] += instance + variant
                doc["requestCount"] += variant
                doc["currentConcurrentExecutionCount"] = variant % 3
                doc["latencyExecute_mean"] += variant
            changed.append(doc)
        out.append(encode_events(changed))
    return out


async def main(port: int, instances: int, commands: int) -> None:
    docs = tick_documents(_registry(commands, calls=20))
    ticks = {f"/i{n}/hystrix.stream".encode(): _variants(docs, n) for n in range(instances)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1]
            variants = ticks.get(path)
            if variants is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            writer.write(_HEAD)
            n = 0
            while True:
                writer.write(variants[n % 4] + b"ping: \n\n")
                await writer.drain()
                n += 1
                await asyncio.sleep(0.5)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
