"""The gRPC API server: ``dapr.proto.runtime.v1.Dapr`` from the official SDK's descriptors.

Every RPC of the service is served; one a building block does not serve
answers ``UNIMPLEMENTED`` naming the RPC (the SDK relies on that for its
Alpha fallbacks). :class:`~pydapr.errors.APIError` raised by a handler is
sent as a ``google.rpc.Status`` with Dapr's ``ErrorInfo`` for rich errors.

The SDK's protobuf modules (about 6 MB of memory, every runtime proto) and the
rich-error protos load on the first gRPC call, not at start-up: a sidecar whose
app only speaks HTTP never pays for them.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import grpc

from ..errors import APIError

__all__ = ["SERVICE", "dapr_service", "DaprService", "abort", "status_of", "serve_grpc", "rpc_names"]

log = logging.getLogger("pydapr.grpc")

SERVICE = "dapr.proto.runtime.v1.Dapr"


def _descriptor() -> Any:
    from dapr.proto.runtime.v1 import dapr_pb2
    return dapr_pb2.DESCRIPTOR.services_by_name["Dapr"]


def rpc_names() -> list[str]:
    return [m.name for m in _descriptor().methods]


def status_of(err: APIError) -> Any:
    """The grpc Status (with ErrorInfo for rich errors) for an APIError."""
    from google.rpc import error_details_pb2, status_pb2
    from grpc_status import rpc_status
    code = getattr(grpc.StatusCode, err.grpc_code)
    st = status_pb2.Status(code=code.value[0], message=err.message)
    if err.reason:
        info = error_details_pb2.ErrorInfo(reason=err.reason, domain="dapr.io", metadata=err.metadata)
        st.details.add().Pack(info)
    return rpc_status.to_status(st)


async def abort(context: grpc.aio.ServicerContext, err: APIError) -> None:
    """Abort the call with ``err`` rendered as Dapr does; never returns."""
    await context.abort_with_status(status_of(err))


def _unimplemented(name: str) -> Callable:
    message = f"{name} is not implemented by pydapr yet"

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
    return handler


def _guard(name: str, fn: Callable) -> Callable:
    """Unary handlers: APIError -> Dapr's status; any other error -> INTERNAL without internals."""

    @functools.wraps(fn)
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except APIError as err:
            await abort(context, err)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", name)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in the sidecar; see its log")
    return handler


_PREFIX = f"/{SERVICE}/"
_MAKERS = {(False, False): grpc.unary_unary_rpc_method_handler,
           (False, True): grpc.unary_stream_rpc_method_handler,
           (True, False): grpc.stream_unary_rpc_method_handler,
           (True, True): grpc.stream_stream_rpc_method_handler}


class DaprService(grpc.GenericRpcHandler):
    """A handler for every RPC of the Dapr service, built on the first call.

    :param methods: RPC name -> ``async`` handler ``(request, context)`` (streaming RPCs
        take ``(request_iterator, context)`` and may be async generators).
    :param wrap: optional per-method wrapper (API token, allow lists) applied to every RPC.
    """

    def __init__(self, methods: dict[str, Callable],
                 wrap: Callable[[str, Callable], Callable] | None = None) -> None:
        self._methods, self._wrap = methods, wrap
        self._handlers: dict[str, Any] | None = None

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if not method.startswith(_PREFIX):
            return None
        if self._handlers is None:
            self._handlers = self._build()
        return self._handlers.get(method[len(_PREFIX):])

    def _build(self) -> dict[str, Any]:
        from google.protobuf import message_factory
        handlers = {}
        for m in _descriptor().methods:
            req_cls = message_factory.GetMessageClass(m.input_type)
            resp_cls = message_factory.GetMessageClass(m.output_type)
            fn = self._methods.get(m.name)
            streaming = m.client_streaming or m.server_streaming
            if fn is None:
                fn = _unimplemented(m.name)
            elif not streaming:
                fn = _guard(m.name, fn)
            if self._wrap is not None:
                fn = self._wrap(m.name, fn)
            make = _MAKERS[(m.client_streaming, m.server_streaming)]
            handlers[m.name] = make(fn, request_deserializer=req_cls.FromString,
                                    response_serializer=resp_cls.SerializeToString)
        return handlers


def dapr_service(methods: dict[str, Callable], wrap: Callable[[str, Callable], Callable] | None = None
                 ) -> DaprService:
    """The generic handler of the Dapr service (see :class:`DaprService`)."""
    return DaprService(methods, wrap)


async def serve_grpc(handlers: list[grpc.GenericRpcHandler], hosts: list[str], port: int,
                     max_message: int, interceptors: list | None = None,
                     unix_path: str | None = None) -> grpc.aio.Server:
    """The gRPC API server on each host (or on the Unix socket ``unix_path`` instead)."""
    opts = [("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message),
            ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(interceptors=interceptors or None, options=opts)
    server.add_generic_rpc_handlers(handlers)
    if unix_path is not None:
        import os

        from .http import remove_stale_socket
        remove_stale_socket(unix_path)
        if server.add_insecure_port(f"unix:{unix_path}") == 0:
            raise OSError(f"cannot listen for gRPC on unix:{unix_path}")
        os.chmod(unix_path, 0o600)  # this user only (the default umask already denies connect)
    for host in hosts if unix_path is None else ():
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if server.add_insecure_port(target) == 0:
            raise OSError(f"cannot listen for gRPC on {target}")
    await server.start()
    return server
