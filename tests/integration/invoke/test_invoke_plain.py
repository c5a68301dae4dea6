"""Service invocation between real sidecars over plain TCP (mTLS off): callers are unverified."""
from __future__ import annotations

import base64
import http.client
import json

import grpc
import pytest
from hypothesis import given, settings, strategies as st


HTTP_ENDPOINT = """apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {{name: echo-ext}}
spec:
  baseUrl: http://127.0.0.1:{port}/base
  headers:
  - {{name: x-endpoint, value: set-by-sidecar}}
"""

RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    timeouts: {short: 300ms}
    retries:
      three: {policy: constant, duration: 20ms, maxRetries: 2, matching: {httpStatusCodes: "503"}}
    circuitBreakers:
      cb: {maxRequests: 1, timeout: 30s, trip: "consecutiveFailures > 2"}
  targets:
    apps:
      appslow: {timeout: short, retry: three}
      appcb: {circuitBreaker: cb}
"""


@pytest.fixture(scope="module")
def env(apps, sidecars, config_yaml):
    app_b, app_c, app_ns = apps(), apps(), apps()
    b = sidecars("appb", app_port=app_b.port, env={"APP_API_TOKEN": "token-of-b"})
    c = sidecars("appc", app_port=app_c.port, config=config_yaml("""
accessControl:
  defaultAction: deny
  trustDomain: public
  policies:
  - {appId: appa, defaultAction: allow, trustDomain: public, namespace: default}
"""))
    n = sidecars("appn", app_port=app_ns.port, env={"NAMESPACE": "ns2"})
    a = sidecars("appa", env={"DAPR_API_TOKEN": "token-of-a", "APP_API_TOKEN": "app-token-of-a"},
                 resources=HTTP_ENDPOINT.format(port=app_b.port))
    return {"a": a, "b": b, "c": c, "n": n, "app_b": app_b, "app_c": app_c, "app_ns": app_ns}


def call(sc, method, path, body=None, headers=None):
    """A request through http.client (urllib would replace a Connection header)."""
    conn = http.client.HTTPConnection("127.0.0.1", sc.http_port, timeout=20)
    try:
        conn.request(method, path, body, {"dapr-api-token": "token-of-a", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_body_query_headers_and_identity(env):
    app = env["app_b"]
    status, h, body = call(env["a"], "POST", "/v1.0/invoke/appb/method/orders/new?x=1&y=%20z",
                           b"payload", {"content-type": "text/plain", "x-custom": "kept",
                                        "Dapr-Caller-App-Id": "spoofed", "dapr-callee-app-id": "x",
                                        "connection": "x-hop", "x-hop": "dropped",
                                        "te": "trailers", "proxy-authorization": "secret"})
    assert status == 200 and h["x-echo-app"] == "1" and h["content-type"] == "application/json"
    seen = json.loads(body)
    assert seen["method"] == "POST" and seen["path"] == "/orders/new" and seen["query"] == "x=1&y=%20z"
    assert seen["body"] == "payload"
    got = seen["header_lists"]
    assert got["content-type"] == ["text/plain"] and got["x-custom"] == ["kept"]
    assert got["dapr-caller-app-id"] == ["appa"] and got["dapr-caller-namespace"] == ["default"]
    assert got["dapr-callee-app-id"] == ["appb"]
    for hop in ("x-hop", "te", "proxy-authorization", "connection"):
        assert hop not in got
    # tokens never cross a hop: the callee's app sees exactly its own token
    assert got["dapr-api-token"] == ["token-of-b"]
    assert app.last() is not None


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD",
                                  "TRACE"])
def test_every_verb(env, verb):
    status, _, body = call(env["a"], verb, "/v1.0/invoke/appb/method/verbs", None)
    assert status == 200
    assert env["app_b"].last()["method"] == verb
    if verb != "HEAD":
        assert json.loads(body)["method"] == verb


def test_status_and_headers_pass_through(env):
    status, h, body = call(env["a"], "GET", "/v1.0/invoke/appb/method/status/418")
    assert status == 418 and h["x-echo-app"] == "1"
    status, _, _ = call(env["a"], "GET", "/v1.0/invoke/appb/method/status/404")
    assert status == 404


def test_dapr_app_id_header_and_basic_auth_forms(env):
    status, _, body = call(env["a"], "PUT", "/admin/../api/v1/add?q=1", b"{}",
                           {"dapr-app-id": "appb"})
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/api/v1/add" and seen["query"] == "q=1"
    assert "dapr-app-id" not in seen["headers"]
    auth = "Basic " + base64.b64encode(b"dapr-app-id:appb").decode()
    status, _, body = call(env["a"], "GET", "/x/y", None, {"authorization": auth})
    assert status == 200 and json.loads(body)["path"] == "/x/y"
    assert "authorization" not in json.loads(body)["headers"]
    status, _, body = call(env["a"], "GET", "/test%23stream", None, {"dapr-app-id": "appb"})
    assert status == 400 and json.loads(body)["errorCode"] == "ERR_MALFORMED_REQUEST"


def test_unknown_app_and_bad_app_id(env):
    status, _, body = call(env["a"], "GET", "/v1.0/invoke/nosuchapp/method/x")
    assert status == 500 and json.loads(body)["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "nosuchapp" in json.loads(body)["message"]
    status, _, body = call(env["a"], "GET", "/v1.0/invoke/a.b.c/method/x")
    assert status == 400
    status, _, body = call(env["a"], "GET", "/nothing/here")
    assert status == 404 and json.loads(body)["errorCode"] == "ERR_DIRECT_INVOKE"


def test_forbidden_characters_never_reach_the_app(env):
    before = sum(env["app_b"].hits.values())
    for raw in ("admin%3Fignored", "admin%00public", "test%0Dstream", "public%23/../x"):
        status, _, body = call(env["a"], "GET", f"/v1.0/invoke/appb/method/{raw}")
        assert status == 400 and json.loads(body)["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert sum(env["app_b"].hits.values()) == before


def test_cross_namespace(env):
    status, _, body = call(env["a"], "POST", "/v1.0/invoke/appn.ns2/method/there", b"x")
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["dapr-callee-app-id"] == "appn" and seen["dapr-caller-namespace"] == "default"
    # appn lives in ns2 only
    status, _, _ = call(env["a"], "POST", "/v1.0/invoke/appn/method/there", b"x")
    assert status == 500


def test_self_invocation_restamps_identity(env):
    b = env["b"]
    status, _, body = b.request("GET", "/v1.0/invoke/appb/method/me", None,
                                {"dapr-caller-app-id": "spoofed"})
    seen = json.loads(body)["header_lists"]
    assert status == 200 and seen["dapr-caller-app-id"] == ["appb"]


def test_without_mtls_policies_fall_back_to_their_default(env):
    """appc allows appa by policy, but without mTLS nobody is verified: global default deny."""
    status, _, body = call(env["a"], "GET", "/v1.0/invoke/appc/method/anything")
    assert status == 403
    err = json.loads(body)
    assert err["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "unverified caller" in err["message"] and "anything" in err["message"]
    assert "GET" in err["message"]
    assert env["app_c"].hits["/anything"] == 0


def test_http_endpoint_by_name_and_by_url(env):
    status, _, body = call(env["a"], "POST", "/v1.0/invoke/echo-ext/method/ping", b"e")
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/base/ping"
    assert seen["headers"]["x-endpoint"] == "set-by-sidecar"
    assert "dapr-api-token" not in seen["headers"]
    port = env["app_b"].port
    url = f"http%3A%2F%2F127.0.0.1%3A{port}"
    status, _, body = call(env["a"], "GET", f"/v1.0/invoke/{url}/method/direct")
    assert status == 200 and json.loads(body)["path"] == "/direct"
    status, _, body = call(env["a"], "GET", f"/v1.0/invoke/http://127.0.0.1:{port}/method/plain")
    assert status == 200 and json.loads(body)["path"] == "/plain"


def test_full_url_to_an_undeclared_origin_is_refused(env):
    status, _, body = call(env["a"], "GET", "/v1.0/invoke/http%3A%2F%2F127.0.0.1%3A9/method/x")
    assert status == 403 and "open proxy" in json.loads(body)["message"]


def test_grpc_invoke_service(env):
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2
    from google.protobuf import any_pb2
    a = env["a"]
    with grpc.insecure_channel(f"127.0.0.1:{a.grpc_port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        md = (("dapr-api-token", "token-of-a"), ("x-md", "v"))
        req = invoke_pb2.InvokeServiceRequest(id="appb", message=common_pb2.InvokeRequest(
            method="admin%2F..%2Fpublic", data=any_pb2.Any(value=b"g"), content_type="text/plain",
            http_extension=common_pb2.HTTPExtension(verb=common_pb2.HTTPExtension.POST,
                                                    querystring="k=v")))
        resp, call_ = stub.InvokeService.with_call(req, metadata=md)
        seen = json.loads(resp.data.value)
        # gRPC method names are opaque: the escapes are part of the name the app receives
        assert seen["path"] == "/admin%2F..%2Fpublic" and seen["query"] == "k=v"
        assert seen["headers"]["x-md"] == "v" and seen["headers"]["dapr-api-token"] == "token-of-b"
        assert dict(call_.initial_metadata())["dapr-http-status"] == "200"
        req.message.method = "status/404"
        with pytest.raises(grpc.RpcError) as info:
            stub.InvokeService(req, metadata=md)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        req.message.method = "anything"
        req.id = "appc"
        with pytest.raises(grpc.RpcError) as info:
            stub.InvokeService(req, metadata=md)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_resiliency_timeouts_retries_and_breaker(apps, sidecars):
    slow, flaky = apps(), apps()
    sidecars("appslow", app_port=slow.port)
    sidecars("appcb", app_port=flaky.port)
    caller = sidecars("appr", resources=RESILIENCY)
    status, _, body = caller.request("GET", "/v1.0/invoke/appslow/method/slow/2000")
    assert status == 500 and "timed out" in json.loads(body)["message"]
    status, _, _ = caller.request("GET", "/v1.0/invoke/appslow/method/status/503")
    assert status == 503 and slow.hits["/status/503"] == 3      # one call and two retries
    status, _, _ = caller.request("GET", "/v1.0/invoke/appslow/method/status/500")
    assert status == 500 and slow.hits["/status/500"] == 1      # 500 is not in the matching list
    for _ in range(3):
        status, _, _ = caller.request("GET", "/v1.0/invoke/appcb/method/status/500")
        assert status == 500
    assert flaky.hits["/status/500"] == 3
    status, _, body = caller.request("GET", "/v1.0/invoke/appcb/method/status/500")
    assert status == 500 and "circuit breaker" in json.loads(body)["message"]
    assert flaky.hits["/status/500"] == 3  # the open breaker never reached the app


@pytest.mark.parametrize("block,needle", [
    ("accessControl: {defaultAction: deny, policies: [{appId: a, namespace: default}]}",
     "lacks trustDomain"),
    ("accessControl:\n  defaultAction: deny\n  policies:\n  - {appId: a, trustDomain: public, "
     "namespace: default, operations: [{name: /x, httpVerb: [get], action: allow}]}",
     "httpVerb: 'get' can never match"),
    ("nameResolution: {component: nope}", "nameresolution.nope"),
])
def test_invalid_configuration_stops_startup(config_yaml, block, needle):
    from pydapr.testing import Sidecar
    sc = Sidecar(app_id="badconfig", config=config_yaml(block), wait_ready=False).start()
    try:
        assert sc.proc.wait(30) != 0
        assert needle in sc.logs()
    finally:
        sc.stop()
        sc._tmp.cleanup()


ROUTER_CHECKER = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: onlyapi}
spec:
  type: middleware.http.routerchecker
  version: v1
  metadata:
  - {name: rule, value: "^/api/"}
"""


def test_calls_into_the_app_go_through_the_app_http_pipeline(apps, sidecars, config_yaml):
    app = apps()
    sidecars("appguarded", app_port=app.port, resources=ROUTER_CHECKER, config=config_yaml("""
appHttpPipeline:
  handlers: [{name: onlyapi, type: middleware.http.routerchecker}]
"""))
    caller = sidecars("appcaller")
    status, _, body = caller.request("GET", "/v1.0/invoke/appguarded/method/api/ok")
    assert status == 200 and json.loads(body)["path"] == "/api/ok"
    status, _, body = caller.request("GET", "/v1.0/invoke/appguarded/method/admin")
    assert status == 400 and body == b"invalid router"
    assert app.hits["/admin"] == 0


def test_large_bodies_stream_through_and_limits_hold(env, apps, sidecars):
    body = b"0123456789abcdef" * (3 << 16)  # 3 MiB: many frames, several window refills
    status, _, out = call(env["a"], "POST", "/v1.0/invoke/appb/method/big", body)
    assert status == 200 and json.loads(out)["body"].encode() == body
    small = apps()
    sidecars("appsmall", app_port=small.port, args=["--dapr-http-max-request-size", "1"])
    status, _, out = call(env["a"], "POST", "/v1.0/invoke/appsmall/method/big", body)
    assert status == 413 and json.loads(out)["errorCode"] == "ERR_BODY_READ"
    assert small.hits["/big"] == 0


_PIECES = ["a", "B", "..", ".", "", "%2F", "%2f", "%25", "%2541", "x%41", "%5C", "*", "+", ";",
           "%C3%BC", "%23", "%3F", "%00", "%20", "~", "=", "@", ":"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6).map("/".join))
def test_the_app_receives_exactly_what_the_policy_evaluated(env, raw):
    """Random methods through real sidecars: the app's one decode yields the canonical method."""
    from pydapr.errors import APIError
    from pydapr.plugins.invoke.method import canonical_http_method
    try:
        expected = canonical_http_method(raw)
    except APIError:
        expected = None
    status, _, body = call(env["a"], "POST", f"/v1.0/invoke/appb/method/{raw}", b"p")
    if expected is None:
        assert status == 400
    else:
        assert status == 200, body
        assert json.loads(body)["path"] == "/" + expected
