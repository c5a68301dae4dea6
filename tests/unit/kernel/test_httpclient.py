"""The pooled HTTP/1.1 client of the app channel: keep-alive reuse and peers that close."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

import pytest

from pydapr.server.httpclient import HTTPClientError, HTTPClientPool

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., Any]]:
    """``await server(close_after=N)``: a server answering OK that closes each connection after
    N answers without saying so (as a keep-alive timeout does); returns (port, connections)."""
    servers: list[asyncio.base_events.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(close_after: int | None = None) -> tuple[int, list[int]]:
        conns: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            conns.append(0)
            k = len(conns) - 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(OK)
                    await writer.drain()
                    conns[k] += 1
                    if close_after is not None and conns[k] >= close_after:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(srv)
        return srv.sockets[0].getsockname()[1], conns
    yield start
    await _close(servers, writers)


async def _close(servers: list, writers: list) -> None:
    for srv in servers:
        srv.close()
    for w in writers:
        w.close()
    await asyncio.sleep(0.01)  # the handlers see their connections close


async def test_keep_alive_connections_are_reused(server: Any) -> None:
    port, conns = await server()
    pool = HTTPClientPool("127.0.0.1", port)
    for _ in range(5):
        assert (await pool.request("GET", "/")).body == b"ok"
    assert conns == [5]
    pool.close()


async def test_a_connection_the_peer_closed_while_idle_is_not_reused(server: Any) -> None:
    port, conns = await server(close_after=1)
    pool = HTTPClientPool("127.0.0.1", port, timeout=5)
    assert (await pool.request("GET", "/")).status == 200
    await asyncio.sleep(0.1)  # the server's close reaches the idle connection
    assert pool.idle and pool.idle[0].closed
    resp = await asyncio.wait_for(pool.request("POST", "/", body=b"x"), 2)
    assert resp.status == 200 and conns == [1, 1]
    pool.close()


async def test_an_unreachable_peer_is_a_client_error() -> None:
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(HTTPClientError, match="cannot connect"):
        await HTTPClientPool("127.0.0.1", port).request("GET", "/")


async def _server_that_drops_the_second_request() -> tuple[asyncio.base_events.Server, list[bytes],
                                                          list[asyncio.StreamWriter]]:
    """Answers the first request of each connection; reads the second and closes unanswered."""
    seen: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(OK)
            await writer.drain()
            seen.append(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0), seen, writers


@pytest.mark.parametrize("method, sent_again", [("GET", True), ("POST", False)])
async def test_only_safe_methods_are_sent_again_after_the_peer_dropped_them(
        method: str, sent_again: bool) -> None:
    srv, seen, writers = await _server_that_drops_the_second_request()
    pool = HTTPClientPool("127.0.0.1", srv.sockets[0].getsockname()[1], timeout=5)
    try:
        assert (await pool.request("GET", "/first")).status == 200
        if sent_again:  # a fresh connection answers it
            assert (await pool.request(method, "/second")).status == 200
        else:
            with pytest.raises(HTTPClientError, match="closed by the peer"):
                await pool.request(method, "/second")
        second = [s for s in seen if b"/second" in s]
        assert len(second) == (2 if sent_again else 1)
    finally:
        pool.close()
        await _close([srv], writers)
