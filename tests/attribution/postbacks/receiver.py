"""A real HTTP/1.1 postback receiver on loopback, run as its own process (also used by the benchmark).

``python receiver.py --port P --log FILE [--mode MODE] [--tls CERT KEY]``. Every request to any path is
appended to FILE as one JSON line (method, path with query, Host header, headers, body, and ``conn``: a
number per connection) before it is answered, so a test reads exactly what arrived and over which
connection. ``POST /_mode/<mode>`` switches the behaviour at runtime:
``ok`` 200, ``fail`` 503, ``429`` 429 with ``Retry-After: 1``, ``hang`` never answers, ``close`` drops the
connection without answering, ``slow`` answers 200 after 50 ms, ``redirect`` answers 302 to
``/redirected`` on the same server, ``404`` answers 404; answers in other shapes, all 200: ``chunked``
(a chunked body), ``eof`` (no length: the body ends with the connection), ``interim`` (a 103 first),
``once`` (answers the first request of a connection and closes it on the second without answering, as
a server closing an idle keep-alive connection does), ``late`` (the body 50 ms after the headers);
``garbage`` answers something that is not HTTP.
``/_mode`` requests are not logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from typing import IO

MODES = (
    "ok",
    "fail",
    "hang",
    "close",
    "slow",
    "429",
    "redirect",
    "404",
    "chunked",
    "eof",
    "interim",
    "once",
    "late",
    "garbage",
)


class Receiver:
    def __init__(self, mode: str, log: IO[str]) -> None:
        self.mode = mode
        self.log = log
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if target.startswith("/_mode/"):
                    self.mode = target.removeprefix("/_mode/")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                mode = self.mode
                if mode == "close" or (mode == "once" and served):
                    writer.transport.abort()
                    return
                served += 1
                record = {
                    "method": method,
                    "target": target,
                    "host": headers.get("host"),
                    "headers": headers,
                    "body": body.decode(),
                    "conn": conn,
                }
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()
                if mode == "hang":
                    await asyncio.sleep(3600)
                    return
                if mode == "slow":
                    await asyncio.sleep(0.05)
                if mode == "fail":
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                elif mode == "404":
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                elif mode == "redirect":
                    writer.write(b"HTTP/1.1 302 Found\r\nLocation: /redirected\r\nContent-Length: 0\r\n\r\n")
                elif mode == "chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                elif mode == "eof":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
                    await writer.drain()
                    return
                elif mode == "interim":
                    writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif mode == "late":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(b"ok")
                elif mode == "garbage":
                    writer.write(b"SMTP ready\r\n\r\n")
                elif mode == "429":
                    writer.write(
                        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                    )
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            ValueError,
            ssl.SSLError,
        ):
            pass
        finally:
            writer.close()


async def main(port: int, log: IO[str], mode: str, tls: list[str] | None) -> None:
    receiver = Receiver(mode, log)
    context = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls[0], tls[1])
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, backlog=1024, ssl=context)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
    args = parser.parse_args()
    try:
        import uvloop

        with open(args.log, "a", encoding="utf-8") as log:
            uvloop.run(main(args.port, log, args.mode, args.tls))
    except KeyboardInterrupt:
        sys.exit(0)
