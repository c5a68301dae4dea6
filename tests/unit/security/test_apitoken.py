"""DAPR_API_TOKEN on HTTP and gRPC: exact exemptions, one value, constant time, never forwarded.

Regression tests for GHSA-59m6-82qm-vqgj / CVE-2023-37918 (substring health exemption),
#8172 / PR #8219 (token left in the request after validation) and the token-forwarding
advisories (GHSA-284c-x8m7-9w5h / CVE-2024-35223): see the security model, section 3.
"""
from __future__ import annotations

import json

import grpc
import pytest

import pydapr.plugins.apisecurity as apisecurity

TOKEN = "s3cr3t-api-token"


@pytest.fixture
async def rt(runtime):
    return await runtime(api_token=TOKEN)


def request(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1", "connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# CVE-2023-37918: every one of these must be refused without the token
BYPASS_ATTEMPTS = [
    ("GET", "/v1.0/metadata?x=/healthz"),
    ("GET", "/v1.0/secrets/s/k?x=/healthz"),
    ("GET", "/v1.0/invoke/a/method/healthz"),
    ("GET", "/v1.0/healthz/../metadata"),
    ("GET", "/v1.0/healthz/%2E%2E/metadata"),
    ("GET", "/v1.0/healthz%2F..%2Fmetadata"),
    ("GET", "/v1.0//healthz/x"),
    ("GET", "/v1.0/healthzz"),
    ("GET", "/v1.0/healthz/outbound/x"),
    ("GET", "/healthz"),
    ("GET", "/v1.0/echo#/v1.0/healthz"),
    ("POST", "/v1.0/healthz"),
    ("HEAD", "/v1.0/healthz"),
    ("PUT", "/v1.0/healthz/outbound"),
]


@pytest.mark.parametrize("method, target", BYPASS_ATTEMPTS)
async def test_no_substring_or_verb_bypass(rt, serve, raw, method, target):
    status, _, body = await raw(await serve(rt), request(method, target))
    assert status == 401
    if method != "HEAD":
        assert body == b"invalid api token"


@pytest.mark.parametrize("target", ["/v1.0/healthz", "/v1.0/healthz/outbound", "/v1.0/healthz/",
                                    "/v1.0/healthz?appid=secapp", "//v1.0/healthz/outbound/"])
async def test_exact_health_endpoints_are_exempt(rt, serve, raw, target):
    status, _, _ = await raw(await serve(rt), request("GET", target))
    assert status == 204


@pytest.mark.parametrize("headers", [
    (),                                                         # missing
    ("dapr-api-token: wrong",),                                 # mismatch
    (f"dapr-api-token: {TOKEN}x",),                             # prefix of the value
    (f"dapr-api-token: {TOKEN[:-1]}",),
    (f"dapr-api-token: {TOKEN}", f"dapr-api-token: {TOKEN}"),   # more than one value
    (f"dapr-api-token: {TOKEN}", "dapr-api-token: other"),
    (f"dapr-api-token: {TOKEN}, {TOKEN}",),
    ("dapr-api-token: \xe9\xff",),                              # not ASCII: refused, not a crash
    ("dapr-api-token:",),
])
async def test_bad_tokens_are_refused_in_plain_text(rt, serve, raw, headers):
    status, hdrs, body = await raw(await serve(rt), request("GET", "/v1.0/metadata", *headers))
    assert (status, body) == (401, b"invalid api token")
    assert hdrs["content-type"].startswith("text/plain")


async def test_the_right_token_passes_and_is_removed_before_the_handler(rt, serve, raw):
    for name in ("dapr-api-token", "DAPR-API-TOKEN", "Dapr-Api-Token"):
        req = request("GET", "/v1.0/echo", f"{name}: {TOKEN}")
        status, _, body = await raw(await serve(rt), req)
        assert status == 200
        seen = json.loads(body)["headers"]
        assert "dapr-api-token" not in seen and TOKEN not in json.dumps(seen)


async def test_unmatched_paths_reach_the_fallback_without_the_token(rt, call):
    seen = {}

    def fallback(req):
        seen.update(req.headers)
        return apisecurity.Response(204)
    rt.fallback = fallback
    resp = await call(rt, "POST", "/anything", {"dapr-api-token": TOKEN, "dapr-app-id": "b"})
    assert resp.status == 204 and seen == {"dapr-app-id": "b"}


async def test_without_a_token_configured_a_caller_token_is_still_dropped(runtime, call):
    rt = await runtime()
    resp = await call(rt, "GET", "/v1.0/echo", {"dapr-api-token": "anything"})
    assert resp.status == 200 and "dapr-api-token" not in json.loads(resp.body)["headers"]


async def test_comparison_is_constant_time(rt, call, monkeypatch):
    seen = []

    def spy(a, b):
        seen.append((type(a), type(b)))
        return a == b
    monkeypatch.setattr(apisecurity.hmac, "compare_digest", spy)
    assert (await call(rt, "GET", "/v1.0/echo", {"dapr-api-token": TOKEN})).status == 200
    assert seen == [(bytes, bytes)]


# ------------------------------------------------------------------------------------------ gRPC


async def _grpc(rt, grpc_port, extra=None):
    from dapr.proto.runtime.v1 import dapr_pb2_grpc
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{await grpc_port(rt, extra)}")
    return channel, dapr_pb2_grpc.DaprStub(channel)


@pytest.mark.parametrize("metadata, message", [
    ((), "missing api token in request metadata"),
    ((("dapr-api-token", "wrong"),), "authentication error: api token mismatch"),
    ((("dapr-api-token", TOKEN), ("dapr-api-token", TOKEN)), "more than one api token"),
    ((("dapr-api-token", TOKEN), ("dapr-api-token", "x")), "more than one api token"),
])
async def test_grpc_refuses_missing_wrong_and_repeated_tokens(rt, grpc_port, metadata, message):
    from dapr.proto.runtime.v1 import configuration_pb2, metadata_pb2, state_pb2
    channel, stub = await _grpc(rt, grpc_port)
    async with channel:
        for call in (stub.GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=metadata),
                     stub.GetState(state_pb2.GetStateRequest(), metadata=metadata)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert message in err.value.details()
        stream = stub.SubscribeConfigurationAlpha1(
            configuration_pb2.SubscribeConfigurationRequest(), metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stream:
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_token_passes_and_handlers_never_see_it(rt, grpc_port):
    from dapr.proto.runtime.v1 import configuration_pb2, metadata_pb2, state_pb2
    md = (("dapr-api-token", TOKEN), ("x-caller", "1"))
    channel, stub = await _grpc(rt, grpc_port)
    async with channel:
        got = await stub.GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=md)
        assert got.id == "secapp"
        keys = json.loads((await stub.GetState(state_pb2.GetStateRequest(), metadata=md)).data)
        assert "x-caller" in keys and "dapr-api-token" not in keys
        streamed = [r.id async for r in stub.SubscribeConfigurationAlpha1(
            configuration_pb2.SubscribeConfigurationRequest(), metadata=md)]
        assert "x-caller" in streamed and "dapr-api-token" not in streamed


async def test_grpc_token_also_guards_other_services_on_the_api_port(rt, grpc_port):
    """gRPC proxying (``dapr-app-id``) serves methods outside the Dapr service: same token."""
    async def say(request: bytes, context) -> bytes:
        return b"hello " + request
    echo = grpc.method_handlers_generic_handler(
        "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
    channel, _ = await _grpc(rt, grpc_port, [echo])
    async with channel:
        say_rpc = channel.unary_unary("/test.Echo/Say")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await say_rpc(b"x", metadata=(("dapr-app-id", "b"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await say_rpc(b"x", metadata=(("dapr-api-token", TOKEN),)) == b"hello x"


async def test_no_token_configured_means_no_grpc_check(runtime, grpc_port):
    from dapr.proto.runtime.v1 import metadata_pb2
    rt = await runtime()
    assert "grpc_interceptors" not in rt.stash
    channel, stub = await _grpc(rt, grpc_port)
    async with channel:
        assert (await stub.GetMetadata(metadata_pb2.GetMetadataRequest())).id == "secapp"
