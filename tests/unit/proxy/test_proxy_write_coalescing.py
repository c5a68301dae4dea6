"""Frames written in one turn of the event loop leave in one transport write, in order."""
from __future__ import annotations

import asyncio

from pydapr._proxy_conn import ProxyConnection


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return default


def connected() -> tuple[ProxyConnection, RecordingTransport]:
    conn = ProxyConnection(client=False, verify=lambda transport: None)
    transport = RecordingTransport()
    conn.connection_made(transport)
    return conn, transport


async def test_frames_of_one_turn_share_one_write() -> None:
    conn, transport = connected()
    for part in (b"a", b"bb", b"ccc"):
        conn.write(part)
    assert transport.writes == []  # nothing leaves before the turn ends
    await asyncio.sleep(0)
    assert transport.writes == [b"abbccc"]
    conn.write(b"d")
    await asyncio.sleep(0)
    assert transport.writes == [b"abbccc", b"d"]


async def test_close_sends_what_is_queued_first() -> None:
    conn, transport = connected()
    conn.write(b"last frame")
    conn.close()
    assert transport.writes == [b"last frame"] and transport.closed
    conn.write(b"after close")
    await asyncio.sleep(0)
    assert transport.writes == [b"last frame"]


async def test_nothing_is_written_once_the_connection_is_lost() -> None:
    conn, transport = connected()
    conn.write(b"queued")
    conn.connection_lost(None)
    await asyncio.sleep(0)
    assert transport.writes == []
