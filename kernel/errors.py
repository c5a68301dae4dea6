"""Errors: the startup/config tree and the one table of Dapr API error codes.

Every ``ERR_*`` code appears exactly once in :data:`CODES` with its default
HTTP status, gRPC status code name and (for Dapr's "rich" errors) the
``google.rpc.ErrorInfo`` reason. Both API servers render :class:`APIError`
from this table; a call site may override the status where Dapr does (an
ETag mismatch on save is ``ERR_STATE_SAVE`` with 409 / ABORTED).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "PydaprError", "ConfigError", "StartupError", "PluginError", "ComponentError",
    "ETagMismatch", "ETagInvalid", "ErrorCode", "CODES", "APIError", "http_error_body",
    "MalformedPath",
]


class PydaprError(Exception):
    """Base of every error pydapr raises on purpose."""


class ConfigError(PydaprError):
    """A resource, configuration file or flag is invalid. The message names the file and field."""


class StartupError(PydaprError):
    """The sidecar cannot start (duplicate plugin names, unknown component type, failed init...)."""


class PluginError(StartupError):
    """A plugin is broken or conflicts with another; ``plugin`` and ``dist`` name it."""

    def __init__(self, message: str, plugin: str = "", dist: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.dist = dist


class ComponentError(PydaprError):
    """A component operation failed (server down, bad reply). Building blocks map it to ERR_*."""


class ETagMismatch(ComponentError):
    """The ETag sent does not match the stored one (optimistic concurrency failure)."""


class ETagInvalid(ComponentError):
    """The ETag sent is not in a form the store understands."""


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    http_status: int
    grpc_code: str  # name of a grpc.StatusCode member
    reason: str = ""  # ErrorInfo reason of Dapr's rich errors; "" for legacy errors


def _table(*rows: tuple) -> dict[str, ErrorCode]:
    table: dict[str, ErrorCode] = {}
    for row in rows:
        if row[0] in table:
            raise AssertionError(f"duplicate error code {row[0]}")
        table[row[0]] = ErrorCode(*row)
    return table


#: Dapr's error catalogue (spec section 14): code -> defaults.
CODES: dict[str, ErrorCode] = _table(
    ("ERR_BAD_REQUEST", 400, "INVALID_ARGUMENT"),
    ("ERR_BODY_READ", 400, "INVALID_ARGUMENT"),
    ("ERR_MALFORMED_REQUEST", 400, "INVALID_ARGUMENT"),
    ("ERR_MALFORMED_REQUEST_DATA", 500, "INTERNAL"),
    ("ERR_MALFORMED_RESPONSE", 500, "INTERNAL"),
    ("ERR_API_UNIMPLEMENTED", 501, "UNIMPLEMENTED"),
    ("ERR_APP_CHANNEL_NIL", 500, "INTERNAL"),
    ("ERROR", 500, "INTERNAL"),
    ("ERR_DIRECT_INVOKE", 500, "INTERNAL"),
    ("ERR_STATE_STORE_NOT_FOUND", 400, "INVALID_ARGUMENT", "DAPR_STATE_NOT_FOUND"),
    ("ERR_STATE_STORE_NOT_CONFIGURED", 500, "FAILED_PRECONDITION", "DAPR_STATE_NOT_CONFIGURED"),
    ("ERR_STATE_STORE_NOT_SUPPORTED", 500, "UNIMPLEMENTED", "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"),
    ("ERR_STATE_STORE_TOO_MANY_TRANSACTIONS", 400, "INVALID_ARGUMENT",
     "DAPR_STATE_TOO_MANY_TRANSACTIONS"),
    ("ERR_STATE_GET", 500, "INTERNAL"),
    ("ERR_STATE_BULK_GET", 500, "INTERNAL"),
    ("ERR_STATE_SAVE", 500, "INTERNAL"),
    ("ERR_STATE_DELETE", 500, "INTERNAL"),
    ("ERR_STATE_BULK_DELETE", 500, "INTERNAL"),
    ("ERR_NOT_SUPPORTED_STATE_OPERATION", 400, "INVALID_ARGUMENT"),
    ("ERR_STATE_TRANSACTION", 500, "INTERNAL"),
    ("ERR_STATE_QUERY", 500, "INTERNAL", "DAPR_STATE_QUERY_FAILED"),
    ("ERR_PUBSUB_EMPTY", 404, "INVALID_ARGUMENT", "DAPR_PUBSUB_NAME_EMPTY"),
    ("ERR_PUBSUB_NOT_FOUND", 404, "INVALID_ARGUMENT", "DAPR_PUBSUB_NOT_FOUND"),
    ("ERR_PUBSUB_NOT_CONFIGURED", 400, "FAILED_PRECONDITION", "DAPR_PUBSUB_NOT_CONFIGURED"),
    ("ERR_TOPIC_NAME_EMPTY", 404, "INVALID_ARGUMENT", "DAPR_PUBSUB_TOPIC_NAME_EMPTY"),
    ("ERR_PUBSUB_FORBIDDEN", 403, "PERMISSION_DENIED", "DAPR_PUBSUB_FORBIDDEN"),
    ("ERR_PUBSUB_PUBLISH_MESSAGE", 500, "INTERNAL", "DAPR_PUBSUB_PUBLISH_MESSAGE"),
    ("ERR_PUBSUB_REQUEST_METADATA", 400, "INVALID_ARGUMENT",
     "DAPR_PUBSUB_METADATA_DESERIALIZATION"),
    ("ERR_PUBSUB_CLOUD_EVENTS_SER", 500, "INVALID_ARGUMENT", "DAPR_PUBSUB_CLOUD_EVENT_CREATION"),
    ("ERR_PUBSUB_EVENTS_SER", 400, "INVALID_ARGUMENT", "DAPR_PUBSUB_MARSHAL_EVENTS"),
    ("ERR_PUBLISH_OUTBOX", 500, "INTERNAL"),
    ("ERR_INVOKE_OUTPUT_BINDING", 500, "INTERNAL"),
    ("ERR_SECRET_STORES_NOT_CONFIGURED", 500, "FAILED_PRECONDITION"),
    ("ERR_SECRET_STORE_NOT_FOUND", 401, "INVALID_ARGUMENT"),
    ("ERR_PERMISSION_DENIED", 403, "PERMISSION_DENIED"),
    ("ERR_SECRET_GET", 500, "INTERNAL"),
    ("ERR_CONFIGURATION_STORE_NOT_CONFIGURED", 500, "FAILED_PRECONDITION"),
    ("ERR_CONFIGURATION_STORE_NOT_FOUND", 400, "INVALID_ARGUMENT"),
    ("ERR_CONFIGURATION_GET", 500, "INTERNAL"),
    ("ERR_CONFIGURATION_SUBSCRIBE", 500, "INTERNAL"),
    ("ERR_CONFIGURATION_UNSUBSCRIBE", 500, "INTERNAL"),
    ("ERR_LOCK_STORE_NOT_CONFIGURED", 500, "FAILED_PRECONDITION"),
    ("ERR_LOCK_STORE_NOT_FOUND", 400, "INVALID_ARGUMENT"),
    ("ERR_TRY_LOCK", 500, "INTERNAL"),
    ("ERR_UNLOCK", 500, "INTERNAL"),
    ("ERR_ACTOR_RUNTIME_NOT_FOUND", 500, "INTERNAL"),
    ("ERR_ACTOR_NO_APP_CHANNEL", 400, "UNAVAILABLE"),
    ("ERR_ACTOR_INSTANCE_MISSING", 400, "INTERNAL"),
    ("ERR_ACTOR_INVOKE_METHOD", 500, "INTERNAL"),
    ("ERR_ACTOR_STATE_GET", 500, "INTERNAL"),
    ("ERR_ACTOR_STATE_TRANSACTION_SAVE", 500, "INTERNAL"),
    ("ERR_ACTOR_REMINDER_CREATE", 500, "INTERNAL"),
    ("ERR_ACTOR_REMINDER_GET", 500, "INTERNAL"),
    ("ERR_ACTOR_REMINDER_DELETE", 500, "INTERNAL"),
    ("ERR_ACTOR_REMINDER_NOT_FOUND", 404, "NOT_FOUND"),
    ("ERR_ACTOR_REMINDER_ALREADY_EXISTS", 409, "ALREADY_EXISTS"),
    ("ERR_ACTOR_REMINDER_NON_HOSTED", 403, "PERMISSION_DENIED"),
    ("ERR_ACTOR_TYPE_RESERVED", 403, "PERMISSION_DENIED"),
    ("ERR_ACTOR_TIMER_CREATE", 500, "INTERNAL"),
    ("ERR_ACTOR_STACK_DEPTH", 500, "RESOURCE_EXHAUSTED"),
    ("ERR_ACTOR_NO_PLACEMENT", 400, "UNAVAILABLE"),
    ("ERR_ACTOR_RUNTIME_CLOSED", 503, "UNAVAILABLE"),
    ("ERR_ACTOR_NAMESPACE_REQUIRED", 412, "FAILED_PRECONDITION"),
    ("ERR_ACTOR_NO_ADDRESS", 404, "FAILED_PRECONDITION"),
    ("ERR_HEALTH_NOT_READY", 500, "INTERNAL"),
    ("ERR_HEALTH_APPID_NOT_MATCH", 500, "INTERNAL"),
    ("ERR_OUTBOUND_HEALTH_NOT_READY", 500, "INTERNAL"),
    ("ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED", 500, "INTERNAL"),
    ("ERR_CRYPTO_PROVIDER_NOT_FOUND", 400, "INVALID_ARGUMENT"),
    ("ERR_CRYPTO_KEY", 500, "INTERNAL"),
    ("ERR_CRYPTO", 500, "INTERNAL"),
)


class APIError(PydaprError):
    """An error answered to an API caller, rendered by both servers from :data:`CODES`.

    :param code: an ``ERR_*`` code from :data:`CODES`.
    :param message: text a person can act on; never a secret or token.
    :param http_status: overrides the table's HTTP status (Dapr varies some per case).
    :param grpc_code: overrides the table's gRPC status code name.
    :param metadata: ErrorInfo metadata for rich errors.
    """

    __slots__ = ("code", "message", "http_status", "grpc_code", "reason", "metadata")

    def __init__(self, code: str, message: str, *, http_status: int | None = None,
                 grpc_code: str | None = None, reason: str | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        entry = CODES[code]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status or entry.http_status
        self.grpc_code = grpc_code or entry.grpc_code
        self.reason = entry.reason if reason is None else reason
        self.metadata = metadata or {}

    def http_body(self) -> bytes:
        return http_error_body(self.code, self.message, self.reason, self.metadata)


def http_error_body(code: str, message: str, reason: str = "",
                    metadata: dict[str, Any] | None = None) -> bytes:
    """Dapr's JSON error body; rich errors carry an ErrorInfo detail (spec 0.5)."""
    body: dict[str, Any] = {"errorCode": code, "message": message}
    if reason:
        body["details"] = [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason, "domain": "dapr.io", "metadata": metadata or {},
        }]
    return orjson.dumps(body)


class MalformedPath(PydaprError, ValueError):
    """A URL path parameter has an invalid percent-escape (answered 400 ERR_MALFORMED_REQUEST)."""
