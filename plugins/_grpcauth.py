"""The gRPC side of the API token and of the allow lists.

``token_guard`` wraps each ``dapr.proto.runtime.v1.Dapr`` method (through
``runtime.stash["grpc_wrap"]``) and hands the handler a context whose
``invocation_metadata()`` no longer holds ``dapr-api-token``, so no handler
can forward it. :class:`TokenInterceptor` applies the same check to every
other method the API server may serve (gRPC proxying to apps), whose
forwarding code must drop the key itself.
"""
from __future__ import annotations

import hmac
import inspect
from typing import Any, Callable

import grpc

__all__ = ["TOKEN_KEY", "check_token", "token_guard", "unavailable", "TokenInterceptor"]

TOKEN_KEY = "dapr-api-token"
_UNAVAILABLE = "requested endpoint is not available"


def check_token(metadata: Any, token: bytes) -> str | None:
    """None when ``metadata`` carries exactly one ``dapr-api-token`` equal to ``token``."""
    if not metadata:
        return "missing metadata in request"
    values = [v for k, v in metadata if k == TOKEN_KEY]
    if not values:
        return "missing api token in request metadata"
    if len(values) > 1:
        return "authentication error: more than one api token in request metadata"
    value = values[0] if isinstance(values[0], bytes) else values[0].encode()
    if not hmac.compare_digest(value, token):
        return "authentication error: api token mismatch"
    return None


class _Context:
    """The call's context, minus the token in ``invocation_metadata()``."""

    __slots__ = ("_ctx", "_metadata")

    def __init__(self, ctx: Any, metadata: tuple) -> None:
        self._ctx = ctx
        self._metadata = metadata

    def invocation_metadata(self) -> tuple:
        return self._metadata

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


async def _authenticate(context: Any, token: bytes) -> _Context:
    metadata = context.invocation_metadata()
    error = check_token(metadata, token)
    if error is not None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, error)
    return _Context(context, tuple(m for m in metadata if m[0] != TOKEN_KEY))


def token_guard(fn: Callable, token: bytes) -> Callable:
    """``fn`` behind the API token check (unary, streaming and async-generator handlers)."""
    if inspect.isasyncgenfunction(fn):
        async def guarded_stream(request: Any, context: Any) -> Any:
            ctx = await _authenticate(context, token)
            async for item in fn(request, ctx):
                yield item
        return guarded_stream

    async def guarded(request: Any, context: Any) -> Any:
        return await fn(request, await _authenticate(context, token))
    return guarded


async def unavailable(request: Any, context: Any) -> Any:
    """What a method removed by the allow/deny lists answers (as daprd)."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, _UNAVAILABLE)


_MAKERS = {(False, False): grpc.unary_unary_rpc_method_handler,
           (False, True): grpc.unary_stream_rpc_method_handler,
           (True, False): grpc.stream_unary_rpc_method_handler,
           (True, True): grpc.stream_stream_rpc_method_handler}


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """The API token on every method outside ``skip_prefix`` (which ``token_guard`` covers)."""

    def __init__(self, token: bytes, skip_prefix: str) -> None:
        self.token = token
        self.skip_prefix = skip_prefix

    async def intercept_service(self, continuation: Callable, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self.skip_prefix):
            return handler
        error = check_token(details.invocation_metadata, self.token)
        if error is None:
            return handler

        async def refuse(request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, error)
        make = _MAKERS[(handler.request_streaming, handler.response_streaming)]
        return make(refuse, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)
