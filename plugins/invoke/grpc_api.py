"""gRPC ``InvokeService`` (spec 1.3): the same invocation path as HTTP, answered the gRPC way.

gRPC method names are never percent-decoded (security spec 1.4): they are
canonicalised as they are. For an HTTP callee the verb is required, its HTTP
status comes back in the ``dapr-http-status`` header, and a non-2xx status
becomes the gRPC error of Dapr's table with an ``ErrorInfo``.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import grpc

from pydapr.errors import APIError
from pydapr.server.grpc import abort

from .grpc_proxy import status_code
from .headers import SIDECAR_AUTH_HEADERS, outbound_headers, valid_value
from .method import canonicalise
from .wire import Call

if TYPE_CHECKING:
    from . import InvokeAPI

__all__ = ["GrpcInvoke", "HTTP_TO_GRPC"]

#: HTTP status of an HTTP callee -> gRPC code name (spec 1.3)
HTTP_TO_GRPC = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                408: "CANCELLED", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "UNKNOWN",
                501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_SKIP = ("grpc-", ":")


class GrpcInvoke:
    def __init__(self, api: InvokeAPI) -> None:
        self.api = api

    async def invoke_service(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        from dapr.proto.common.v1 import common_pb2
        from google.protobuf import any_pb2
        from . import split_target
        api = self.api
        rt = api.rt
        msg = request.message
        method = canonicalise(msg.method)
        if not method:
            raise APIError("ERR_MALFORMED_REQUEST", "invalid method: the method name is missing")
        app, ns = split_target(request.id, rt.namespace)
        verb = ""
        if msg.HasField("http_extension") and msg.http_extension.verb:
            verb = common_pb2.HTTPExtension.Verb.Name(msg.http_extension.verb)
        md = [(k, v) for k, v in context.invocation_metadata() or ()
              if isinstance(v, str) and not k.startswith(_SKIP) and k != "user-agent"]
        headers = outbound_headers(md, rt.stash.get(SIDECAR_AUTH_HEADERS, ()))
        if msg.content_type:
            headers = [(k, v) for k, v in headers if k != "content-type"]
            headers.append(("content-type", msg.content_type))
        caller = await api.ready_caller()
        res = await caller.invoke(Call(app, ns, method, verb, msg.http_extension.querystring,
                                       headers, msg.data.value, rt.app_id, rt.namespace))
        if res.error is not None:
            raise res.error
        ctype = res.header("content-type")
        if res.grpc_status is not None:
            if res.grpc_status != 0:
                await context.abort(status_code(res.grpc_status), res.grpc_message)
            return common_pb2.InvokeResponse(data=any_pb2.Any(value=res.body), content_type=ctype)
        meta = [("dapr-http-status", str(res.status))]
        meta += [(k, v) for k, v in res.headers if k != "content-type" and v.isascii()
                 and valid_value(v) and not k.endswith("-bin")]
        await context.send_initial_metadata(meta)
        if 200 <= res.status < 300:
            return common_pb2.InvokeResponse(data=any_pb2.Any(value=res.body), content_type=ctype)
        text = res.body.decode("utf-8", "replace")
        reason = _reason(res.status)
        err = APIError("ERR_DIRECT_INVOKE", text or reason, http_status=res.status,
                       grpc_code=HTTP_TO_GRPC.get(res.status, "UNKNOWN"), reason=reason,
                       metadata={"http.code": str(res.status), "http.error_message": text[:63]})
        await abort(context, err)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
