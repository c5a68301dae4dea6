"""API allow and deny lists (spec 9.2; Dapr's TestAPIAllowlist and gRPC endpoint tests)."""
from __future__ import annotations

import json

import grpc
import pytest

from pydapr.errors import ConfigError
from pydapr.plugins._apiaccess import GRPC_ENDPOINTS, APIAccess
from pydapr.registry import Route
from pydapr.resources import APIRule, Configuration


def access(allowed=(), denied=()) -> APIAccess:
    rule = lambda r: APIRule(*r)  # noqa: E731
    return APIAccess.from_config(Configuration(api_allowed=[rule(r) for r in allowed],
                                               api_denied=[rule(r) for r in denied]))


STATE = Route(("GET",), "/v1.0/state/{store}/{key}", None, "state")
QUERY = Route(("POST",), "/v1.0-alpha1/state/{store}/query", None, "state")
PUBLISH = Route(("POST",), "/v1.0/publish/{pubsub}/{topic*}", None, "publish")
SECRETS = Route(("GET",), "/v1.0/secrets/{store}/{key}", None, "secrets")
HEALTH = Route(("GET",), "/v1.0/healthz", None, "healthz")
UNGROUPED = Route(("GET",), "/v1.0/stateful/x", None, "")


@pytest.mark.parametrize("allowed, denied, expected", [
    ([], [], {STATE, QUERY, PUBLISH, SECRETS, HEALTH, UNGROUPED}),
    ([("state", "v1.0", "http")], [], {STATE, HEALTH, UNGROUPED}),        # legacy: prefix of route
    ([("state", "v1", "http")], [], {STATE, HEALTH}),                     # group form
    ([("state", "v1alpha1", "http")], [], {QUERY, HEALTH}),
    ([("state", "v1.0-alpha1", "http")], [], {QUERY, HEALTH}),
    ([("state", "v1", "HTTP")], [], {STATE, HEALTH}),                     # protocol: any case
    ([], [("state", "v1.0", "http")], {QUERY, PUBLISH, SECRETS, HEALTH}),
    ([], [("state", "v1", "http"), ("secrets", "v1", "http")], {QUERY, PUBLISH, HEALTH, UNGROUPED}),
    ([("state", "v1", "http"), ("publish", "v1.0", "http")], [("state", "v1.0", "http")],
     {PUBLISH, HEALTH}),                                                  # deny wins
    ([("state", "v1", "grpc")], [("publish", "v1", "grpc")],
     {STATE, QUERY, PUBLISH, SECRETS, HEALTH, UNGROUPED}),                # gRPC rules ignored
    ([], [("healthz", "v1", "http")], {STATE, QUERY, PUBLISH, SECRETS, HEALTH, UNGROUPED}),
])
def test_http_matching(allowed, denied, expected):
    rules = access(allowed, denied)
    routes = {STATE, QUERY, PUBLISH, SECRETS, HEALTH, UNGROUPED}
    assert {r for r in routes if rules.http_route_allowed(r)} == expected


@pytest.mark.parametrize("allowed, denied, rpc, ok", [
    ([], [], "GetSecret", True),
    ([("secrets", "v1", "grpc")], [], "GetBulkSecret", True),
    ([("secrets", "v1", "grpc")], [], "GetState", False),
    ([("secrets", "v1", "grpc")], [], "SomeNewRpcAlpha9", False),
    ([], [("state", "v1", "grpc")], "SaveState", False),
    ([], [("state", "v1", "grpc")], "QueryStateAlpha1", True),
    ([("state", "v1", "grpc"), ("state", "v1alpha1", "grpc")], [("state", "v1", "grpc")],
     "QueryStateAlpha1", True),
    ([("state", "v1", "http")], [], "GetSecret", True),                   # HTTP rules ignored
])
def test_grpc_matching(allowed, denied, rpc, ok):
    assert access(allowed, denied).grpc_allows(rpc) is ok


def test_grpc_table_names_real_rpcs():
    from pydapr.server.grpc import rpc_names
    known = set(rpc_names())
    listed = {rpc for rpcs in GRPC_ENDPOINTS.values() for rpc in rpcs}
    assert {"GetSecret", "InvokeService", "SaveState", "Shutdown", "GetActorTimer"} <= listed
    assert listed <= known


@pytest.mark.parametrize("rule, message", [
    (("state", "v1", ""), "'protocol' must be http or grpc"),
    (("state", "v1", "https"), "'protocol' must be http or grpc"),
    (("state", "", "http"), "'version' is required"),
    (("state", "v1.0", "grpc"), "no gRPC API is named 'state.v1.0'"),
])
@pytest.mark.parametrize("field", ["allowed", "denied"])
def test_rules_that_could_never_apply_stop_startup(rule, message, field):
    with pytest.raises(ConfigError, match=message):
        access(**{field: [rule]})


def _config(allowed=(), denied=()) -> str:
    lines = ["kind: Configuration", "metadata: {name: api}", "spec:", "  api:"]
    for name, rules in (("allowed", allowed), ("denied", denied)):
        if rules:
            lines.append(f"    {name}:")
            lines += [f"    - {{name: {n}, version: {v}, protocol: {p}}}" for n, v, p in rules]
    return "\n".join(lines) + "\n"


async def test_disallowed_http_routes_are_not_registered(runtime, call):
    rt = await runtime(config=_config(allowed=[("metadata", "v1.0", "http")]))
    assert (await call(rt, "GET", "/v1.0/metadata")).status == 200
    assert (await call(rt, "GET", "/v1.0/healthz")).status == 204
    echo = await call(rt, "GET", "/v1.0/echo")
    # not registered -> fallback, which is removed too because invoke is not allowed
    assert (echo.status, echo.body) == (404, b"requested endpoint is not available")


async def test_a_disallowed_route_falls_through_to_invoke_when_invoke_is_allowed(runtime, call):
    rt = await runtime(config=_config(denied=[("echo", "v1.0", "http")]))
    resp = await call(rt, "GET", "/v1.0/echo")
    assert resp.status == 404 and json.loads(resp.body)["errorCode"] == "ERR_DIRECT_INVOKE"
    assert (await call(rt, "GET", "/v1.0/echo/async")).status == 404


async def test_disallowed_grpc_methods_are_unimplemented(runtime, grpc_port):
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, secret_pb2, state_pb2
    rt = await runtime(config=_config(allowed=[("metadata", "v1", "grpc"), ("state", "v1", "grpc")],
                                      denied=[("state", "v1", "grpc")]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{await grpc_port(rt)}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        assert (await stub.GetMetadata(metadata_pb2.GetMetadataRequest())).id == "secapp"
        for call in (stub.GetState(state_pb2.GetStateRequest()),
                     stub.GetSecret(secret_pb2.GetSecretRequest(store_name="s", key="k"))):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert err.value.details() == "requested endpoint is not available"


async def test_a_rule_that_matches_no_route_is_reported(runtime, caplog):
    await runtime(config=_config(allowed=[("metadata", "v1.0", "http"), ("stat", "v2", "http")]))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("{name: stat, version: v2} matches no route" in w for w in warnings)
    assert not any("name: metadata" in w for w in warnings)
