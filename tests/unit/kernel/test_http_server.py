"""The HTTP API server: framing, keep-alive, pipelining and limits enforced while reading.

Every test runs against both twins of the connection protocol (``http_impl``).
"""
from __future__ import annotations

import asyncio

import pytest

from pydapr.errors import APIError
from pydapr.server.http import HTTPLimits, serve_http
from pydapr.server.request import Request, Response


async def _dispatch_async(req: Request) -> Response:
    await asyncio.sleep(0.01)
    return Response.json({"path": req.path, "len": len(req.body)})


HANGING: list[asyncio.Future] = []


async def _hang(req: Request) -> Response:
    fut = asyncio.get_running_loop().create_future()
    HANGING.append(fut)
    await fut
    return Response(200)


def _future(req: Request) -> asyncio.Future:
    """A future completed by a callback, as a broker's confirm is: no coroutine involved."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    if req.path == "/future":
        loop.call_later(0.01, fut.set_result, Response(200, b"from a future"))
    else:
        loop.call_later(0.01, fut.set_exception, RuntimeError("secret internal detail"))
    return fut


def dispatch(req: Request):
    if req.path in ("/future", "/future-boom"):
        return _future(req)
    if req.path == "/hang":
        return _hang(req)
    if req.path == "/async-boom":
        return _async_boom()
    if req.path == "/sync":
        return Response(200, b"sync", content_type="text/plain")
    if req.path == "/slow":
        return _dispatch_async(req)
    if req.path == "/boom":
        raise RuntimeError("secret internal detail")
    if req.path == "/apierror":
        raise APIError("ERR_STATE_STORE_NOT_FOUND", "state store x is not found")
    if req.path == "/echo":
        return Response(200, req.body + b"|" + req.headers.get("x-a", "").encode())
    return Response(404)


async def _async_boom() -> Response:
    await asyncio.sleep(0)
    raise RuntimeError("secret internal detail")


@pytest.fixture
async def server(http_impl):
    limits = HTTPLimits(max_body=1024, max_header_bytes=2048, header_timeout=0.3, idle_timeout=2)
    servers, _ = await serve_http(dispatch, ["127.0.0.1"], 0, limits,
                                  protocol=http_impl.HTTPServerProtocol)
    port = servers[0].sockets[0].getsockname()[1]
    yield port
    for s in servers:
        s.close()


async def exchange(port: int, data: bytes, read_until_close: bool = True, timeout: float = 3) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(), timeout)
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def test_sync_handler_and_close(server):
    out = await exchange(server, b"GET /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 4\r\n" in out and out.endswith(b"\r\n\r\nsync")
    assert b"connection: close" in out


async def test_pipelined_requests_answered_in_order(server):
    reqs = (b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n"
            b"Connection: close\r\n\r\nabc")
    out = await exchange(server, reqs)
    first, second, third = out.index(b'{"path":"/slow"'), out.index(b"sync"), out.index(b"abc|1, 2")
    assert first < second < third


async def test_keep_alive_reuses_connection(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    for _ in range(3):
        writer.write(b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(4) == b"sync"
    writer.close()


async def test_bad_request_line_gets_400_and_close(server):
    out = await exchange(server, b"GARBAGE\x00\x01 nonsense\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in out


async def test_oversized_headers_get_431(server):
    out = await exchange(server, b"GET /sync HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")


async def test_body_over_limit_by_content_length_gets_413_before_body(server):
    out = await exchange(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b'"errorCode":"ERR_BODY_READ"' in out


async def test_chunked_body_over_limit_gets_413(server):
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    out = await exchange(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk * 2 + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")


async def test_chunked_body_within_limit_is_read(server):
    out = await exchange(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert out.endswith(b"abcde|")


async def test_slow_headers_time_out_with_408(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /sync HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
    out = await asyncio.wait_for(reader.read(), 3)
    assert out.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_handler_crash_gives_json_500_without_internals(server, caplog):
    out = await exchange(server, b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 ")
    assert b'"errorCode":"ERROR"' in out and b"secret internal detail" not in out
    # the server still answers afterwards
    out = await exchange(server, b"GET /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")


async def test_api_error_rendered_as_dapr_rich_error(server):
    out = await exchange(server, b"GET /apierror HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b'"errorCode":"ERR_STATE_STORE_NOT_FOUND"' in out
    assert b'"reason":"DAPR_STATE_NOT_FOUND"' in out


async def test_response_header_injection_is_dropped(http_impl):
    raw = http_impl.render(Response(200, b"", [("x-ok", "1"), ("x-bad", "a\r\nset-cookie: evil")]))
    assert b"x-ok: 1" in raw and b"evil" not in raw


async def test_many_pipelined_async_requests_all_answered(server):
    n = 40  # more than the pipelining queue bound: reading pauses and resumes
    reqs = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" * (n - 1) + (
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = await exchange(server, reqs, timeout=10)
    assert out.count(b"HTTP/1.1 200 OK") == n


async def test_async_handler_errors_become_500_and_the_connection_stays_usable(server):
    out = await exchange(server, b"GET /async-boom HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = out.partition(b"HTTP/1.1 200 OK")
    assert first.startswith(b"HTTP/1.1 500") and b"secret" not in out
    assert rest.endswith(b"sync")


async def test_a_future_is_answered_when_it_completes(server):
    # waited on as it is (create_task refuses a future: a task around it would fail)
    out = await exchange(server, b"GET /future HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /future-boom HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = out.partition(b"from a future")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest.startswith(b"HTTP/1.1 500") and b"secret" not in rest and rest.endswith(b"sync")


async def test_a_cancelled_handler_answers_503_and_closes(server):
    HANGING.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(100):
        if HANGING:
            break
        await asyncio.sleep(0.01)
    HANGING[0].cancel()  # as when the sidecar shuts down with the request in flight
    out = await asyncio.wait_for(reader.read(), 3)
    writer.close()
    assert out.startswith(b"HTTP/1.1 503") and b"shutting down" in out
    assert b"connection: close" in out


async def _quick_timeouts(http_impl, **limits):
    servers, _ = await serve_http(dispatch, ["127.0.0.1"], 0, HTTPLimits(header_timeout=0.2, **limits),
                                  protocol=http_impl.HTTPServerProtocol)
    return servers, servers[0].sockets[0].getsockname()[1]


async def test_idle_keep_alive_connection_is_closed_after_its_answer(http_impl):
    servers, port = await _quick_timeouts(http_impl, idle_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head
        assert await reader.readexactly(4) == b"sync"
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed, without an answer
        writer.close()
    finally:
        for s in servers:
            s.close()


async def test_body_that_stops_arriving_gets_408(http_impl):
    servers, port = await _quick_timeouts(http_impl, body_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        out = await asyncio.wait_for(reader.read(), 3)
        assert out.startswith(b"HTTP/1.1 408 ")
        writer.close()
    finally:
        for s in servers:
            s.close()
