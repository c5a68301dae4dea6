"""APP_API_TOKEN is *set* on every call into the app; a caller's dapr-api-token never reaches it.

Regression tests for the token-forwarding advisories (GHSA-284c-x8m7-9w5h /
CVE-2024-35223, the 1.13.3 "local app token appended" note, #8172): the app sees
exactly its own token, once, or nothing at all.
"""
from __future__ import annotations

import asyncio

import pytest

from pydapr.daprd.options import Options
from pydapr.server.appchannel import AppChannel
from pydapr.server.request import Response


class TinyApp:
    """An HTTP app that records the raw header lines of every request it gets."""

    def __init__(self) -> None:
        self.requests: list[list[tuple[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        pairs = (ln.partition(":") for ln in lines if ln)
        headers = [(k.strip().lower(), v.strip()) for k, _, v in pairs]
        length = int(dict(headers).get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        self.requests.append(headers)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
                     b"connection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    def tokens(self, i: int = -1) -> list[str]:
        return [v for k, v in self.requests[i] if k == "dapr-api-token"]


@pytest.fixture
async def app():
    tiny = TinyApp()
    server = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    tiny.port = server.sockets[0].getsockname()[1]
    yield tiny
    server.close()


CALLER_COPIES = [("dapr-api-token", "caller-token"), ("Dapr-Api-Token", "second-copy"),
                 ("x-other", "kept")]


@pytest.mark.parametrize("app_token, expected", [("app-token", ["app-token"]), ("", [])])
async def test_app_channel_sets_its_own_token_and_drops_callers(app, app_token, expected):
    channel = AppChannel(Options(app_id="a", app_port=app.port, app_api_token=app_token))
    try:
        for headers in (None, CALLER_COPIES):
            resp = await channel.call_http("POST", "/method", headers, b"{}")
            assert resp.status == 200
            assert app.tokens() == expected  # exactly one value, never appended
        assert ("x-other", "kept") in app.requests[-1]
        md = channel.grpc_metadata(CALLER_COPIES[:1])
        assert md == [("dapr-api-token", app_token)] * len(expected)
    finally:
        await channel.close()


@pytest.mark.parametrize("app_token, expected", [("app-token", ["app-token"]), ("", [])])
async def test_dapr_token_stops_at_the_sidecar_and_app_token_is_set(runtime, call, app, app_token,
                                                                   expected):
    """App -> sidecar (DAPR_API_TOKEN) -> the invoke path -> app: only APP_API_TOKEN arrives."""
    rt = await runtime(api_token="dapr-token", app_port=app.port, app_api_token=app_token)
    rt.app_channel = AppChannel(rt.options)

    async def forward(req):  # what the invoke fallback does with the caller's headers
        resp = await (rt.app_pipeline or rt.app_channel).call_http(
            req.method, req.path, list(req.headers.items()), req.body)
        return Response(resp.status, resp.body)
    rt.fallback = forward
    try:
        resp = await call(rt, "POST", "/method",
                          {"dapr-api-token": "dapr-token", "dapr-app-id": "me"})
        assert resp.status == 200 and app.tokens() == expected
        resp = await call(rt, "POST", "/method", {"dapr-app-id": "me"})
        assert resp.status == 401 and len(app.requests) == 1  # refused before the app
    finally:
        await rt.app_channel.close()
