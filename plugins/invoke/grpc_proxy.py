"""gRPC proxying (spec 1.3): an app's own gRPC calls, routed by ``dapr-app-id`` metadata.

The app calls any of its services on its sidecar's gRPC port with metadata
``dapr-app-id: <target>``; the sidecar carries the raw call over the proxy
loop, and the callee's sidecar replays it on its app's gRPC port. Messages
stream in both directions as they come (each one length-prefixed inside DATA
frames); the gRPC status travels as a trailing header block. The operation the
callee's policy evaluates is the full method name (``/pkg.Service/Method``,
case-sensitive, R7). The API token is checked here, whatever the order of the
server's interceptors, and is never forwarded.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import grpc

from pydapr.errors import APIError
from pydapr.server.grpc import status_of

from .headers import SIDECAR_AUTH_HEADERS, outbound_headers
from .method import canonicalise
from .wire import Call, parse_result, request_head

if TYPE_CHECKING:
    from pydapr._proxy_conn import Stream

    from . import InvokeAPI

__all__ = ["GrpcProxy", "KIND", "frame_message", "read_messages", "status_code"]

#: request pseudo-header marking a proxied gRPC call
KIND = (":kind", "grpc")
_LEN = struct.Struct("!I")
_SKIP = ("grpc-", ":")


def frame_message(message: bytes) -> bytes:
    return _LEN.pack(len(message)) + message


async def read_messages(stream: Stream, limit: int) -> AsyncIterator[bytes]:
    """The length-prefixed messages of a stream's body, each at most ``limit`` bytes."""
    buf = b""
    while True:
        chunk = await stream.read()
        if not chunk:
            if buf:
                raise APIError("ERR_MALFORMED_REQUEST", "truncated gRPC message in the stream")
            return
        buf += chunk
        while len(buf) >= 4:
            (size,) = _LEN.unpack_from(buf)
            if size > limit:
                raise APIError("ERR_MALFORMED_REQUEST", f"gRPC message larger than {limit} bytes")
            if len(buf) < 4 + size:
                break
            yield buf[4:4 + size]
            buf = buf[4 + size:]


class GrpcProxy(grpc.aio.ServerInterceptor):
    """Serves unknown methods that carry ``dapr-app-id`` by proxying them to the target app."""

    def __init__(self, api: InvokeAPI) -> None:
        self.api = api

    async def intercept_service(self, continuation: Callable, details: Any) -> Any:
        target = None
        if not details.method.startswith("/dapr.proto."):
            target = next((v for k, v in details.invocation_metadata or () if k == "dapr-app-id"),
                          None)
        handler = await continuation(details)
        if handler is not None or target is None:
            return handler
        method = details.method

        async def proxied(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
            async for message in self._proxy(str(target), method, requests, context):
                yield message
        return grpc.stream_stream_rpc_method_handler(proxied)

    async def _proxy(self, target: str, method: str, requests: AsyncIterator[bytes],
                     context: Any) -> AsyncIterator[bytes]:
        import asyncio

        from pydapr.plugins._grpcauth import check_token

        from . import split_target
        api, rt = self.api, self.api.rt
        md = context.invocation_metadata() or ()
        token = rt.options.api_token
        if token:
            error = check_token(md, token.encode())
            if error is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, error)
        try:
            app, ns = split_target(target, rt.namespace)
            name = canonicalise(method)
            if "/" + name != method:
                raise APIError("ERR_MALFORMED_REQUEST", f"invalid gRPC method name {method!r}")
            caller = await api.ready_caller()
            headers = outbound_headers(
                [(k, v) for k, v in md if isinstance(v, str) and not k.startswith(_SKIP)],
                rt.stash.get(SIDECAR_AUTH_HEADERS, ()))
            stream = await caller.open_stream(app, ns)
        except APIError as err:
            await context.abort_with_status(status_of(err))
            return
        stream.send_headers([*request_head(Call(app, ns, name, "", "", headers, b"", rt.app_id,
                                                rt.namespace)), KIND])

        async def pump() -> None:
            async for message in requests:
                await stream.write(frame_message(message))
            stream.end()

        sender = asyncio.ensure_future(pump())
        try:
            res = parse_result(await stream.response(), b"")
            if res.error is not None:
                await context.abort_with_status(status_of(res.error))
            async for message in read_messages(stream, api.max_body):
                yield message
            trailers = parse_result(stream.trailers or [], b"")
            if trailers.grpc_status:
                await context.abort(status_code(trailers.grpc_status), trailers.grpc_message)
        finally:
            sender.cancel()
            if not stream.finished:
                stream.reset(reason="the caller gave up")


def status_code(value: int) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` of a numeric gRPC status."""
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
