"""gRPC proxying: an app's own gRPC calls routed by ``dapr-app-id`` through two sidecars."""
from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest


class EchoService:
    """A gRPC app with raw-bytes methods: unary ``Say``, bidi ``Chat``, failing ``Missing``."""

    def __init__(self) -> None:
        self.metadata: list[dict] = []

        def say(request: bytes, context) -> bytes:
            self.metadata.append({k: v for k, v in context.invocation_metadata()})
            return b"said:" + request

        def chat(requests, context):
            for message in requests:
                yield b"echo:" + message

        def missing(request: bytes, context) -> bytes:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

        def on_invoke(request: bytes, context) -> bytes:
            from dapr.proto.common.v1 import common_pb2
            from google.protobuf import any_pb2
            req = common_pb2.InvokeRequest.FromString(request)
            if req.method == "fail":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input")
            data = f"oninvoke:{req.method}:{req.http_extension.querystring}:".encode() + req.data.value
            return common_pb2.InvokeResponse(data=any_pb2.Any(value=data),
                                             content_type="text/plain").SerializeToString()

        callback = grpc.method_handlers_generic_handler(
            "dapr.proto.runtime.v1.AppCallback",
            {"OnInvoke": grpc.unary_unary_rpc_method_handler(on_invoke)})
        handlers = {"Say": grpc.unary_unary_rpc_method_handler(say),
                    "Chat": grpc.stream_stream_rpc_method_handler(chat),
                    "Missing": grpc.unary_unary_rpc_method_handler(missing)}
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo",
                                                                                    handlers),
                                              callback])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture(scope="module")
def proxied(sidecars, config_yaml):
    app = EchoService()
    sidecars("grpcapp", app_port=app.port, args=["--app-protocol", "grpc"],
             env={"APP_API_TOKEN": "callee-app-token"})
    sidecars("grpcdeny", app_port=app.port, args=["--app-protocol", "grpc"],
             config=config_yaml("accessControl: {defaultAction: deny}"))
    caller = sidecars("grpccaller", env={"DAPR_API_TOKEN": "caller-token"})
    channel = grpc.insecure_channel(f"127.0.0.1:{caller.grpc_port}")
    yield app, channel, caller
    channel.close()
    app.stop()


def md(target: str = "grpcapp", token: str | None = "caller-token") -> tuple:
    out = [("dapr-app-id", target), ("x-trace", "t1")]
    if token:
        out.append(("dapr-api-token", token))
    return tuple(out)


def test_unary_call_is_proxied_and_tokens_do_not_cross(proxied):
    app, channel, _ = proxied
    say = channel.unary_unary("/test.Echo/Say")
    assert say(b"hi", metadata=md(), timeout=10) == b"said:hi"
    seen = app.metadata[-1]
    assert seen["x-trace"] == "t1" and seen["dapr-caller-app-id"] == "grpccaller"
    assert seen["dapr-api-token"] == "callee-app-token" and "dapr-app-id" not in seen


def test_bidi_stream_is_proxied_message_by_message(proxied):
    _, channel, _ = proxied
    chat = channel.stream_stream("/test.Echo/Chat")
    replies = list(chat(iter([b"a", b"bb", b"ccc"]), metadata=md(), timeout=10))
    assert replies == [b"echo:a", b"echo:bb", b"echo:ccc"]


def test_app_status_comes_back(proxied):
    _, channel, _ = proxied
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/test.Echo/Missing")(b"", metadata=md(), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and info.value.details() == "no such thing"


def test_api_token_is_required(proxied):
    _, channel, _ = proxied
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/test.Echo/Say")(b"", metadata=md(token=None), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_callee_policy_applies(proxied):
    app, channel, _ = proxied
    before = len(app.metadata)
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/test.Echo/Say")(b"", metadata=md("grpcdeny"), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "/test.Echo/Say" in info.value.details() or "test.Echo/Say" in info.value.details()
    assert len(app.metadata) == before


def test_invocation_of_a_grpc_app_goes_to_on_invoke(proxied):
    """``/v1.0/invoke`` and ``InvokeService`` reach a gRPC app through ``AppCallback.OnInvoke``."""
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2
    from google.protobuf import any_pb2
    _, channel, caller = proxied
    token = {"dapr-api-token": "caller-token"}
    status, headers, body = caller.request("POST", "/v1.0/invoke/grpcapp/method/hello?q=1", b"body",
                                           token)
    assert status == 200 and body == b"oninvoke:hello:q=1:body"
    assert {k.lower(): v for k, v in headers.items()}["content-type"] == "text/plain"
    status, _, body = caller.request("POST", "/v1.0/invoke/grpcapp/method/fail", b"", token)
    assert status == 400 and json.loads(body) == {"code": 3, "message": "bad input", "details": []}
    stub = dapr_pb2_grpc.DaprStub(channel)
    req = invoke_pb2.InvokeServiceRequest(id="grpcapp", message=common_pb2.InvokeRequest(
        method="hello", data=any_pb2.Any(value=b"x")))
    resp = stub.InvokeService(req, metadata=(("dapr-api-token", "caller-token"),), timeout=10)
    assert resp.data.value == b"oninvoke:hello::x" and resp.content_type == "text/plain"
    req.message.method = "fail"
    with pytest.raises(grpc.RpcError) as info:
        stub.InvokeService(req, metadata=(("dapr-api-token", "caller-token"),), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
