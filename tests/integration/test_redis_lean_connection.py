"""The lean pipelined Redis connection behind state GETs/writes and pub/sub publishes."""
from __future__ import annotations

import asyncio
import time

import pytest

from pydapr.components._common.resp import ReplyError, RESPClient, encode
from pydapr.testing import require_server


def test_encode_is_resp_arrays_of_bulk_strings() -> None:
    assert encode(("SET", "k", b"v\r\n", 12)) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n")
    assert encode(["PING"]) == b"*1\r\n$4\r\nPING\r\n"


async def test_pipelined_replies_match_their_commands() -> None:
    require_server("redis")
    r = RESPClient("127.0.0.1", 6379)
    try:
        key = f"lean-{time.monotonic_ns()}"
        sets = [r.call("SET", f"{key}-{i}", b"x" * i) for i in range(50)]
        assert await asyncio.gather(*sets) == [b"OK"] * 50
        got = await asyncio.gather(*(r.call("GET", f"{key}-{i}") for i in range(50)))
        assert got == [b"x" * i for i in range(50)]
        assert await r.call("GET", f"{key}-missing") is None
        err = await r.call("INCR", f"{key}-3")  # not an integer: an error reply, not an exception
        assert isinstance(err, ReplyError) and "not an integer" in str(err)
        assert await r.call("DEL", *(f"{key}-{i}" for i in range(50))) == 50
    finally:
        r.close()


async def test_send_nowait_pipelines_with_calls_and_fails_on_an_error_reply() -> None:
    require_server("redis")
    r = RESPClient("127.0.0.1", 6379)
    try:
        key = f"lean-{time.monotonic_ns()}"
        assert r.send_nowait("PING") is None  # not connected yet: call() connects
        await r.call("SET", key, b"7")
        ok = r.send_nowait("INCR", key)
        bad = r.send_nowait("LPUSH", key, b"x")  # wrong type: fails this future only
        plain = r.call("INCR", f"{key}-text-{0}")
        assert await ok == 8
        with pytest.raises(ReplyError, match="WRONGTYPE"):
            await bad
        assert await plain == 1  # replies still match their commands after the failure
        assert await r.call("DEL", key, f"{key}-text-0") == 2
    finally:
        r.close()


async def _silent_server() -> tuple[asyncio.base_events.Server, int]:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()
    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_server_that_never_answers_fails_every_waiting_command_after_the_timeout() -> None:
    server, port = await _silent_server()
    r = RESPClient("127.0.0.1", port, timeout=0.3)
    try:
        start = time.monotonic()
        first = asyncio.ensure_future(r.call("PING"))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(r.call("PING"))
        for fut in (first, second):
            with pytest.raises(ConnectionError, match="did not answer within 0.3s"):
                await fut
        # one watchdog for the connection: both fail once the oldest command is overdue
        assert 0.25 < time.monotonic() - start < 1.0
    finally:
        r.close()
        server.close()
        await server.wait_closed()


async def test_reconnects_after_the_server_closed_the_connection() -> None:
    require_server("redis")
    r = RESPClient("127.0.0.1", 6379)
    try:
        assert await r.call("PING") == b"PONG"
        client_id = await r.call("CLIENT", "ID")
        killer = RESPClient("127.0.0.1", 6379)
        assert await killer.call("CLIENT", "KILL", "ID", client_id) == 1
        killer.close()
        for _ in range(100):  # the loss is noticed when the close arrives
            if r.conn is None or r.conn.closed:
                break
            await asyncio.sleep(0.01)
        assert await r.call("PING") == b"PONG"
    finally:
        r.close()


async def test_unreachable_server_is_a_clear_connection_error() -> None:
    server, port = await _silent_server()
    server.close()
    await server.wait_closed()
    r = RESPClient("127.0.0.1", port, connect_timeout=1)
    with pytest.raises(ConnectionError, match=f"cannot connect to Redis at 127.0.0.1:{port}"):
        await r.call("PING")
