"""Exposure defaults: Host check on a loopback-only API (DNS rebinding), Origin and CORS."""
from __future__ import annotations

import pytest

from pydapr.plugins.apisecurity import loopback_only


@pytest.mark.parametrize("addresses, expected", [
    (["127.0.0.1"], True), (["127.0.0.1", "[::1]"], True), (["localhost"], True),
    (["::1"], True), (["127.0.0.2"], True), (["0.0.0.0"], False),
    (["127.0.0.1", "10.0.0.5"], False),
    (["myhost"], False), ([], False),
])
def test_loopback_only(addresses, expected):
    assert loopback_only(addresses) is expected


@pytest.mark.parametrize("host, status", [
    ("localhost", 200), ("LocalHost:3500", 200), ("127.0.0.1:3500", 200), ("[::1]:50001", 200),
    ("[::1]", 200), (None, 200),
    ("attacker.example", 400), ("attacker.example:3500", 400), ("localhost.attacker.example", 400),
    ("127.0.0.1.nip.io", 400), ("127.0.0.1:3500@evil", 400), ("", 400), ("localhost:", 400),
    ("localhost:123456", 400),
])
async def test_host_header_is_checked_when_bound_to_loopback(runtime, call, host, status):
    rt = await runtime()
    resp = await call(rt, "GET", "/v1.0/echo", {"host": host} if host is not None else {})
    assert resp.status == status
    if status == 400:
        assert b"listens on loopback only" in resp.body


async def test_any_host_when_listening_beyond_loopback(runtime, call):
    rt = await runtime(dapr_listen_addresses=["0.0.0.0"])
    assert (await call(rt, "GET", "/v1.0/echo", {"host": "sidecar.internal:3500"})).status == 200


async def test_by_default_no_cross_origin_caller_and_no_cors_headers(runtime, call):
    rt = await runtime()
    plain = await call(rt, "GET", "/v1.0/echo", {"host": "127.0.0.1:3500"})
    assert plain.status == 200
    assert not any(k.startswith("access-control") for k, _ in plain.headers or ())
    for method, extra in (("GET", {}), ("POST", {"content-type": "text/plain"}),
                          ("OPTIONS", {"access-control-request-method": "POST"})):
        resp = await call(rt, method, "/v1.0/echo",
                          {"host": "127.0.0.1:3500", "origin": "https://evil.example", **extra})
        assert resp.status == 403 and not resp.headers
    assert (await call(rt, "GET", "/v1.0/echo", {"origin": "null"})).status == 403


async def test_same_origin_pages_are_not_cross_origin(runtime, call):
    rt = await runtime()
    resp = await call(rt, "POST", "/v1.0/echo", {"host": "127.0.0.1:3500",
                                                 "origin": "http://127.0.0.1:3500"})
    assert resp.status == 200 and not resp.headers


async def test_allowed_origins(runtime, call):
    rt = await runtime(allowed_origins="https://app.example, http://localhost:8080/")
    good = {"host": "127.0.0.1:3500", "origin": "https://app.example"}
    pre = await call(rt, "OPTIONS", "/v1.0/echo",
                     {**good, "access-control-request-method": "PUT",
                      "access-control-request-headers": "content-type, x-a"})
    assert pre.status == 204
    hdrs = dict(pre.headers)
    assert hdrs["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in hdrs["access-control-allow-methods"]
    assert hdrs["access-control-allow-headers"] == "content-type, x-a"
    for path in ("/v1.0/echo", "/v1.0/echo/async"):
        resp = await call(rt, "GET", path, good)
        assert resp.status == 200
        assert ("access-control-allow-origin", "https://app.example") in resp.headers
    other = await call(rt, "GET", "/v1.0/echo", {**good, "origin": "https://app.example.evil"})
    assert other.status == 403 and not other.headers
    assert (await call(rt, "GET", "/v1.0/echo", {"origin": "http://localhost:8080"})).status == 200


async def test_cors_response_constants_are_never_mutated(runtime, call):
    rt = await runtime(allowed_origins="*")
    first = await call(rt, "GET", "/v1.0/healthz", {"origin": "https://a.example"})
    second = await call(rt, "GET", "/v1.0/healthz")
    assert first.status == second.status == 204
    assert first.headers and not second.headers


async def test_with_a_token_a_preflight_without_it_gets_401_and_no_cors(runtime, call):
    rt = await runtime(api_token="t0k3n", allowed_origins="https://app.example")
    resp = await call(rt, "OPTIONS", "/v1.0/echo", {"origin": "https://app.example",
                                                    "access-control-request-method": "GET"})
    assert resp.status == 401 and not resp.headers
