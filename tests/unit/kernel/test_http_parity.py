"""The compiled HTTP protocol twin against the reference: same interface, same bytes, same closes.

The differential test feeds both twins the same byte streams (valid, pipelined,
malformed, over the limits, split at arbitrary points) through a fake
transport, and compares every write, close and pause, the requests the
dispatch saw, and whether a deadline is armed after each chunk.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pydapr._http_py as http_py
from pydapr._http_common import DispatchCell, HTTPLimits
from pydapr.errors import APIError
from pydapr.server.request import NO_CONTENT, Request, Response

CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def http_cy():
    try:
        import pydapr._speedups._http as compiled
    except ImportError as exc:
        reason = f"pydapr._speedups._http is not built ({exc})"
        if CI:
            pytest.fail(f"{reason} (CI=true: the compiled twins must be tested)")
        pytest.skip(reason)
    return compiled


def _methods(cls) -> dict[str, list[str]]:
    """Public callables and their parameter names (annotations differ between the twins)."""
    out = {}
    for name in dir(cls):
        if name.startswith("_") or not callable(getattr(cls, name)):
            continue
        out[name] = list(inspect.signature(getattr(cls, name)).parameters)
    return out


@pytest.mark.speedups
def test_same_public_interface(http_cy):
    assert http_cy.__all__ == http_py.__all__ == ["HTTPServerProtocol", "render"]
    assert _methods(http_cy.HTTPServerProtocol) == _methods(http_py.HTTPServerProtocol)
    assert set(_methods(http_py.HTTPServerProtocol)) >= {
        "connection_made", "connection_lost", "data_received", "eof_received", "pause_writing",
        "resume_writing", "check_deadline", "shutdown", "on_message_begin", "on_url", "on_header",
        "on_headers_complete", "on_body", "on_message_complete"}
    assert (list(inspect.signature(http_cy.render).parameters)
            == list(inspect.signature(http_py.render).parameters))


def _implementation(no_extensions: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYDAPR_NO_EXTENSIONS"}
    if no_extensions:
        env["PYDAPR_NO_EXTENSIONS"] = "1"
    code = ("import pydapr.server.http as h; "
            "print(h.IMPLEMENTATION, h.HTTPServerProtocol.__module__, h.render.__module__)")
    return subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True).stdout.split()


def test_selector_honours_no_extensions():
    assert _implementation(no_extensions=True) == ["python", "pydapr._http_py", "pydapr._http_py"]


@pytest.mark.speedups
def test_selector_prefers_the_compiled_twin(http_cy):
    assert _implementation(no_extensions=False) == [
        "cython", "pydapr._speedups._http", "pydapr._speedups._http"]


@pytest.mark.speedups
def test_render_agrees(http_cy):
    responses = [
        NO_CONTENT, Response(200, b"ok"), Response(304, b"dropped"), Response(101),
        Response.json({"a": 1}, 201, [("x-a", "1"), ("x-bad", "a\r\nb"), ("x-é", "€")]),
        Response.text(503, "later"), Response(599, b"?", content_type="text/x"),
    ]
    for resp in responses:
        for keep_alive in (True, False):
            for head in (True, False):
                assert (http_cy.render(resp, keep_alive, head)
                        == http_py.render(resp, keep_alive, head)), (resp.status, keep_alive, head)


# -- differential ----------------------------------------------------------------------

class FakeTransport:
    """Records what the protocol does to its connection."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.closed = True
        self.events.append(("close",))

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 4321) if name == "peername" else default

    def pause_reading(self) -> None:
        self.events.append(("pause",))

    def resume_reading(self) -> None:
        self.events.append(("resume",))


async def _later(req: Request) -> Response:
    await asyncio.sleep(0)
    return Response.json({"later": req.path})


def _dispatch(seen: list):
    def dispatch(req: Request):
        seen.append((req.method, req.path, req.query_string, dict(req.headers), req.body, req.peer,
                     req.params, req.query))
        if req.path == "/health":
            return NO_CONTENT
        if req.path == "/api-error":
            raise APIError("ERR_STATE_STORE_NOT_FOUND", "state store x is not found")
        if req.path == "/bug":
            raise RuntimeError("internal detail")
        if req.path == "/later":
            return _later(req)
        if req.path == "/later-error":
            return _raise_later()
        return Response.json({"m": req.method, "q": req.query_string, "h": req.headers,
                              "b": req.body.decode("latin-1")}, headers=[("x-p", req.path)])
    return dispatch


async def _raise_later() -> Response:
    raise APIError("ERR_BODY_READ", "late")


_REQUESTS = [
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:3500\r\n\r\n",
    b"GET /x?a=1&metadata.k=v&a=2 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nX-B: \xe9\xff\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /close HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /ten HTTP/1.0\r\n\r\n",
    b"GET /ten-keep HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"DELETE /api-error HTTP/1.1\r\n\r\n",
    b"GET /bug HTTP/1.1\r\n\r\n",
    b"GET /later HTTP/1.1\r\n\r\n",
    b"POST /later-error HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    b"PROPFIND /odd%20path/%C3%A9 HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n",                     # 413 before body
    b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + b"x" * 80 + b"\r\n0\r\n\r\n",
    b"GET /big HTTP/1.1\r\nX-Big: " + b"a" * 300 + b"\r\n\r\n",                 # 431
    b"GET /" + b"u" * 300 + b" HTTP/1.1\r\n\r\n",                                # 414
    b"GET /up HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GARBAGE\x00\x01 nonsense\r\n\r\n",
    b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n",
]


def _run(module, chunks: list[bytes], limits: HTTPLimits) -> tuple:
    async def go():
        transport, seen, armed = FakeTransport(), [], []
        proto = module.HTTPServerProtocol(DispatchCell(_dispatch(seen)), limits, set())
        proto.connection_made(transport)
        for chunk in chunks:
            proto.data_received(chunk)
            for _ in range(4):  # let async handlers finish, the same way for both twins
                await asyncio.sleep(0)
            armed.append(proto.deadline > 0)
        for _ in range(8):
            await asyncio.sleep(0)
        proto.shutdown()
        return transport.events, seen, armed
    return asyncio.run(go())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a] or [data]


@pytest.mark.speedups
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.sampled_from(range(len(_REQUESTS))), min_size=1, max_size=8),
       cuts=st.lists(st.integers(0, 10_000), max_size=6), tail=st.binary(max_size=8))
def test_twins_write_and_close_alike(http_cy, picks, cuts, tail):
    data = b"".join(_REQUESTS[i] for i in picks) + tail
    chunks = _split(data, cuts)
    limits = HTTPLimits(max_body=64, max_header_bytes=256)
    py, cy = _run(http_py, chunks, limits), _run(http_cy, chunks, limits)
    assert cy[0] == py[0]  # every write, close and pause, in order
    assert cy[1] == py[1]  # the requests the dispatch saw
    assert cy[2] == py[2]  # a deadline armed (or not) after each chunk


@pytest.mark.speedups
def test_pipelined_flood_pauses_and_resumes_alike(http_cy):
    flood = [b"GET /later HTTP/1.1\r\n\r\n" * 40 + b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"]
    py, cy = _run(http_py, flood, HTTPLimits()), _run(http_cy, flood, HTTPLimits())
    assert ("pause",) in py[0] and ("resume",) in py[0]
    assert cy == py
