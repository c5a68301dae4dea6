"""The sidecar's side of the signing RPC: one call over gRPC with TLS to the sentry.

The channel verifies the sentry against the sidecar's own trust anchors and
pins the DNS name only the sentry's certificate carries
(:func:`pydapr.identity.protocol.sentry_server_name`), whatever address is
dialled. A channel is opened per call: calls happen once per renewal, and a
fresh channel always uses the current anchors.
"""
from __future__ import annotations

import grpc

from .bundle import TrustBundle
from .protocol import (MAX_MESSAGE, METHOD_PATH, SignRequest, SignResponse, decode_response, encode,
                       sentry_server_name)

__all__ = ["SentryClient", "SentryError"]


class SentryError(Exception):
    """The sentry refused or could not be reached; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class SentryClient:
    """Signs CSRs at ``address`` (``host:port``).

    :param control_plane_namespace: selects the pinned server name.
    :param timeout: seconds per call.
    """

    def __init__(self, address: str, control_plane_namespace: str = "default",
                 timeout: float = 10.0) -> None:
        self.address = address
        self.server_name = sentry_server_name(control_plane_namespace)
        self.timeout = timeout

    async def sign(self, request: SignRequest, bundle: TrustBundle) -> SignResponse:
        """:raises SentryError: refused, unreachable, or an unreadable answer."""
        creds = grpc.ssl_channel_credentials(root_certificates=bundle.pem)
        options = [("grpc.ssl_target_name_override", self.server_name),
                   ("grpc.default_authority", self.server_name),
                   ("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.enable_retries", 0)]
        try:
            async with grpc.aio.secure_channel(self.address, creds, options=options) as channel:
                call = channel.unary_unary(METHOD_PATH)
                data = await call(encode(request), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise SentryError(exc.code(), exc.details() or "no details") from None
        try:
            return decode_response(data)
        except ValueError as exc:
            raise SentryError(grpc.StatusCode.INTERNAL, f"unreadable answer from the sentry: {exc}") \
                from None
