"""The proxy loop in one process: multiplexing, streaming with bounded buffers, resets, limits."""
from __future__ import annotations

import asyncio
import struct

import pytest

from pydapr._frame_common import DATA, PREFACE
from pydapr._proxy_conn import WINDOW_SIZE, ProxyError, StreamReset
from pydapr.proxy import ProxyClient, ProxyServer


async def echo(stream):
    body = await stream.read_all(64 << 20)
    await stream.send([(":status", "200"), ("x-len", str(len(body)))], body)


@pytest.fixture
async def server():
    srv = ProxyServer(echo)
    await srv.start()
    yield srv
    await srv.stop(0.5)


@pytest.fixture
async def client():
    c = ProxyClient()
    yield c
    c.close()


async def roundtrip(client, port, body=b"hello", head=None):
    s = await client.open("127.0.0.1", port)
    await s.send(head or [(":path", "x")], body)
    headers = await s.response()
    return dict(headers), await s.read_all(64 << 20)


async def test_echo_and_header_order(server, client):
    head, body = await roundtrip(client, server.port, b"abc", [(":path", "p"), ("x", "1"), ("x", "2")])
    assert head == {":status": "200", "x-len": "3"} and body == b"abc"


async def test_many_concurrent_requests_share_one_connection(server, client):
    results = await asyncio.gather(*(roundtrip(client, server.port, str(i).encode() * 100)
                                     for i in range(200)))
    assert [b for _, b in results] == [str(i).encode() * 100 for i in range(200)]
    assert client.stats["streams"] == 200
    assert client.stats["connections"] <= 2


async def test_large_body_streams_within_the_window(client):
    peak = 0

    async def counting(stream):
        nonlocal peak
        total = 0
        while True:
            peak = max(peak, stream._received)
            await asyncio.sleep(0)  # a slow reader: the sender must wait for window
            chunk = await stream.read()
            if not chunk:
                break
            total += len(chunk)
        stream.send_headers([(":status", "200"), ("x-total", str(total))], True)

    srv = ProxyServer(counting)
    port = await srv.start()
    s = await client.open("127.0.0.1", port)
    s.send_headers([(":path", "big")])
    await s.write(b"z" * (8 << 20), end_stream=True)
    head = dict(await s.response())
    assert head["x-total"] == str(8 << 20)
    assert 0 < peak <= WINDOW_SIZE
    await srv.stop(0.5)


async def test_oversized_frame_closes_the_connection(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(PREFACE + struct.pack("!IBBI", 1 << 24, DATA, 0, 1))
    await writer.drain()
    await asyncio.wait_for(reader.read(), 5)  # whatever was sent, the server hangs up
    assert reader.at_eof()
    writer.close()


async def test_wrong_preface_is_dropped(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_handler_failure_resets_the_stream(client):
    async def broken(stream):
        raise RuntimeError("boom")

    srv = ProxyServer(broken)
    port = await srv.start()
    s = await client.open("127.0.0.1", port)
    await s.send([(":path", "x")], b"")
    with pytest.raises(StreamReset):
        await s.response()
    await srv.stop(0.5)


async def test_caller_reset_cancels_the_handler(client):
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(stream):
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    srv = ProxyServer(slow)
    port = await srv.start()
    s = await client.open("127.0.0.1", port)
    await s.send([(":path", "x")], b"")
    await asyncio.wait_for(started.wait(), 5)
    s.reset(reason="caller gave up")
    await asyncio.wait_for(cancelled.wait(), 5)
    await srv.stop(0.5)


async def test_connection_refused_is_retryable(client):
    srv = ProxyServer(echo)
    port = await srv.start()
    await srv.stop(0)
    await asyncio.sleep(0.05)
    with pytest.raises(ProxyError) as info:
        await client.open("127.0.0.1", port)
    assert info.value.retryable


async def test_refresh_retires_connections(server, client):
    await roundtrip(client, server.port)
    client.refresh()
    await roundtrip(client, server.port)
    assert client.stats["connections"] == 2


async def test_stop_sends_goaway_and_refuses_new_streams(client):
    gate = asyncio.Event()

    async def waiting(stream):
        await gate.wait()
        await stream.send([(":status", "200")], b"done")

    srv = ProxyServer(waiting)
    port = await srv.start()
    s = await client.open("127.0.0.1", port)
    await s.send([(":path", "x")], b"")
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(srv.stop(2.0))
    await asyncio.sleep(0.05)
    gate.set()
    assert await s.read_all(100) == b"done"  # the stream in flight finishes
    await stopping


async def test_idle_connections_are_closed_by_the_callee():
    srv = ProxyServer(echo, idle_timeout=0.2)
    port = await srv.start()
    client = ProxyClient(idle_timeout=60)
    await roundtrip(client, port)
    (conn,) = [c for conns in client._pools.values() for c in conns]
    for _ in range(100):
        if conn.closed:
            break
        await asyncio.sleep(0.02)
    assert conn.closed
    await roundtrip(client, port)  # the caller simply opens a new one
    assert client.stats["connections"] == 2
    client.close()
    await srv.stop(0.2)
