"""The callee's sidecar: check an incoming invocation, apply the policy, call the app.

The caller's identity is the SPIFFE id of the TLS session (``stream.peer_id``)
and nothing else; without mTLS it is unknown and the policy falls back to its
default action (R2). The method arrives canonical from the caller's sidecar
and is only checked here, never normalised again; the policy evaluates it and
the app receives it with each segment percent-encoded.
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from pydapr._proxy_stream import CANCEL, BodyTooLarge
from pydapr.errors import APIError

from .acl import AccessControl, parse_spiffe_id
from .grpc_proxy import KIND, frame_message, read_messages
from .headers import outbound_headers, response_headers
from .method import dispatch_path, is_canonical
from .wire import Call, Result, error_result, parse_request_head, result_head

if TYPE_CHECKING:
    from pydapr._proxy_conn import Stream
    from pydapr.runtime import Runtime

__all__ = ["Callee", "GRPC_TO_HTTP"]

log = logging.getLogger("pydapr.invoke")

_BAD_QUERY = re.compile(r"[\x00-\x20\x7f#]")

#: gRPC status code -> HTTP status, for a gRPC app answering an HTTP caller
#: canonical method -> dispatch path, for methods already checked (bounded)
_paths: dict[str, str] = {}

GRPC_TO_HTTP = {0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}


def _invoke_error(message: str, status: int = 500, grpc_code: str = "INTERNAL") -> APIError:
    return APIError("ERR_DIRECT_INVOKE", message, http_status=status, grpc_code=grpc_code)


class Callee:
    """Serves invocations for this sidecar's app: from the proxy loop, or from itself."""

    def __init__(self, runtime: Runtime, acl: AccessControl | None, max_body: int) -> None:
        self.rt = runtime
        self.acl = acl
        self.max_body = max_body
        self.grpc_app = runtime.options.app_protocol in ("grpc", "grpcs")
        self._channel: Any = None

    # -- the proxy loop's handler -----------------------------------------------------------

    async def serve(self, stream: Stream) -> None:
        head = stream.headers
        if head and head[-1] == KIND:  # the caller's sidecar appends it last
            await self._grpc_proxy(stream)
            return
        try:
            body = await stream.read_all(self.max_body)
        except BodyTooLarge:
            res = error_result(APIError("ERR_BODY_READ", "request body is larger than the callee's "
                                        f"limit of {self.max_body} bytes", http_status=413))
            stream.send_headers(result_head(res), True)
            stream.reset(CANCEL, "request body too large")  # stop the rest of the body
            return
        call = parse_request_head(stream.headers, body)
        res = await self.invoke(call, stream.peer_id)
        await stream.send(result_head(res), res.body)

    # -- one call -------------------------------------------------------------------------------

    async def invoke(self, call: Call, peer_id: str | None, local: bool = False) -> Result:
        """Check and dispatch ``call``. ``local`` marks self-invocation (no policy, own identity)."""
        try:
            path, headers = self._admit(call, peer_id, local)
            if self.grpc_app:
                return await self._grpc(call, headers)
            return await self._http(call, headers, path)
        except APIError as err:
            return error_result(err)

    def _admit(self, call: Call, peer_id: str | None, local: bool
               ) -> tuple[str, list[tuple[str, str]]]:
        """Check the call and apply the policy; the app's path and the headers to send it.

        :raises APIError: when the call is malformed, denied or has nowhere to go.
        """
        rt = self.rt
        if call.app_id != rt.app_id or call.namespace != rt.namespace:
            raise _invoke_error(f"app {call.app_id!r} in namespace {call.namespace!r} is not "
                                "served by this sidecar", 404, "NOT_FOUND")
        path = _paths.get(call.method)
        if path is None:
            if not is_canonical(call.method):
                raise APIError("ERR_MALFORMED_REQUEST", "invalid method: not in canonical form")
            path = dispatch_path(call.method)
            if len(_paths) < 4096:
                _paths[call.method] = path
        if _BAD_QUERY.search(call.query):
            raise APIError("ERR_MALFORMED_REQUEST", "invalid query string")
        if local:
            caller_app, caller_ns = rt.app_id, rt.namespace
        else:
            caller_app, caller_ns = self._caller(call, peer_id)
            self._authorise(peer_id, call, caller_app)
        headers = outbound_headers(call.headers)
        headers += [("dapr-caller-app-id", caller_app), ("dapr-caller-namespace", caller_ns),
                    ("dapr-callee-app-id", rt.app_id)]
        if rt.app_channel is None:
            raise _invoke_error("app channel is not initialized: the callee's sidecar has no "
                                "--app-port", 500, "INTERNAL")
        return path, headers

    async def _grpc_proxy(self, stream: Stream) -> None:
        """A proxied gRPC call: replay it on the app's gRPC port, streaming both ways."""
        import grpc
        call = parse_request_head(stream.headers, b"")
        try:
            _, headers = self._admit(call, stream.peer_id, False)
            if not self.grpc_app:
                raise _invoke_error("the callee app does not speak gRPC (--app-protocol)", 501,
                                    "UNIMPLEMENTED")
        except APIError as err:
            stream.send_headers(result_head(error_result(err)), True)
            return
        channel = self.rt.app_channel
        md = channel.grpc_metadata([(k, v) for k, v in headers
                                    if not k.endswith("-bin") and v.isascii()])
        rpc = self._raw_channel().stream_stream("/" + call.method)(
            read_messages(stream, self.max_body), metadata=md)
        stream.send_headers([(":status", "200")])
        code, message = 0, ""
        try:
            async for reply in rpc:
                await stream.write(frame_message(reply))
        except grpc.aio.AioRpcError as exc:
            code, message = exc.code().value[0], exc.details() or ""
        stream.send_headers([(":grpc-status", str(code)), (":grpc-message", message)], True)

    def _raw_channel(self) -> Any:
        if self._channel is None:
            import grpc
            o = self.rt.options
            target = f"{o.app_channel_address}:{o.app_port}"
            opts = [("grpc.max_receive_message_length", o.max_body_size),
                    ("grpc.max_send_message_length", o.max_body_size)]
            self._channel = (grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(),
                                                     options=opts)
                             if o.app_protocol == "grpcs" else
                             grpc.aio.insecure_channel(target, options=opts))
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    def _caller(self, call: Call, peer_id: str | None) -> tuple[str, str]:
        if peer_id is None:  # mTLS off: the caller's sidecar says who it is, unverified
            return call.caller_app, call.caller_ns
        parsed = parse_spiffe_id(peer_id)
        return (parsed[2], parsed[1]) if parsed else ("", "")

    def _authorise(self, peer_id: str | None, call: Call, caller_app: str) -> None:
        if self.acl is None:
            return
        decision = self.acl.check(peer_id, call.method, call.verb)
        if decision.allowed:
            return
        who = peer_id or "unverified caller"
        verb = call.verb or "NONE"
        log.warning("invocation denied: id %s operation %s verb %s (by the %s policy)", who,
                    call.method, verb, decision.by,
                    extra={"event": {"type": "invoke.denied", "caller": who,
                                     "caller_app_claimed": caller_app, "operation": call.method,
                                     "verb": verb, "decided_by": decision.by}})
        raise _invoke_error(f"access control policy has denied access to id: {who} operation: "
                            f"{call.method} verb: {verb}", 403, "PERMISSION_DENIED")

    async def _http(self, call: Call, headers: list[tuple[str, str]], path: str) -> Result:
        from pydapr.server.appchannel import AppUnavailable
        if not call.verb:
            raise APIError("ERR_MALFORMED_REQUEST", "missing HTTP verb: the callee app speaks HTTP "
                           "(set http_extension.verb)")
        target = f"{path}?{call.query}" if call.query else path
        channel: Any = getattr(self.rt, "app_pipeline", None) or self.rt.app_channel
        try:
            resp = await channel.call_http(call.verb, target, headers, call.body)
        except AppUnavailable as exc:
            raise _invoke_error(f"the callee app is not reachable: {exc}", 500, "UNAVAILABLE") from None
        return Result(resp.status, response_headers(resp.headers), resp.body)

    async def _grpc(self, call: Call, headers: list[tuple[str, str]]) -> Result:
        import grpc
        from dapr.proto.common.v1 import common_pb2
        from google.protobuf import any_pb2
        channel = self.rt.app_channel
        ext = common_pb2.HTTPExtension(querystring=call.query)
        if call.verb in common_pb2.HTTPExtension.Verb.keys():
            ext.verb = common_pb2.HTTPExtension.Verb.Value(call.verb)
        ctype = next((v for k, v in headers if k == "content-type"), "")
        req = common_pb2.InvokeRequest(method=call.method, data=any_pb2.Any(value=call.body),
                                       content_type=ctype, http_extension=ext)
        md = [(k, v) for k, v in headers if k != "content-type" and not k.endswith("-bin")
              and v.isascii()]
        try:
            resp = await channel.stub("AppCallback").OnInvoke(req, metadata=channel.grpc_metadata(md))
        except grpc.aio.AioRpcError as exc:
            code = exc.code().value[0]
            import orjson
            body = orjson.dumps({"code": code, "message": exc.details() or "", "details": []})
            return Result(GRPC_TO_HTTP.get(code, 500), [("content-type", "application/json")], body,
                          grpc_status=code, grpc_message=exc.details() or "")
        out = [("content-type", resp.content_type)] if resp.content_type else []
        return Result(200, out, resp.data.value, grpc_status=0)
