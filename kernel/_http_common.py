"""What both twins of the HTTP connection protocol share: limits, the dispatch cell, constants.

:mod:`pydapr._http_py` (the reference) and :mod:`pydapr._speedups._http` (the
compiled twin) import from here, so they answer protocol errors with the same
bytes and read the same limits. Everything here runs at boot or on error
paths; the hot path lives in the twins.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Awaitable, Callable

from .errors import APIError
from .server.request import Request, Response

__all__ = ["Dispatch", "DispatchCell", "HTTPLimits", "MAX_PIPELINED", "METHODS", "SERVER",
           "status_line", "plain_error", "internal_error", "body_too_large", "error_response",
           "task_response"]

log = logging.getLogger("pydapr.http")

Dispatch = Callable[[Request], "Response | Awaitable[Response]"]

#: queued requests on one connection before reading pauses
MAX_PIPELINED = 16
#: the common methods as interned ``str``; others are decoded per request
METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")}
SERVER = b"server: pydapr\r\n"

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


class DispatchCell:
    """The dispatch every connection calls; swapped once when the sidecar finishes booting."""

    __slots__ = ("fn",)

    def __init__(self, fn: Dispatch) -> None:
        self.fn = fn


@dataclass(frozen=True)
class HTTPLimits:
    max_body: int = 4 << 20           # --dapr-http-max-request-size
    max_header_bytes: int = 16 << 10  # request line + headers
    header_timeout: float = 10.0      # from a request's first byte to the end of its headers
    idle_timeout: float = 75.0        # keep-alive connection with no request in progress
    body_timeout: float = 60.0        # end of headers to end of body


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, built once per status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode())
    return line


def plain_error(status: int, text: str) -> bytes:
    """A protocol-level error answer in plain text; the connection closes after it."""
    body = text.encode()
    return (status_line(status) + SERVER + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)


def internal_error() -> Response:
    """What a handler's bug becomes: a 500 that names no internals (they go to the log)."""
    return Response.from_error(APIError("ERROR", "internal error in the sidecar; see its log"))


def error_response(exc: BaseException, req: Request) -> Response:
    """What a handler's exception becomes: an APIError its Dapr error, anything else a
    logged 500 (a bug must not kill the connection loop, nor show its internals)."""
    if isinstance(exc, APIError):
        return Response.from_error(exc)
    log.error("unhandled error in %s %s", req.method, req.path, exc_info=exc)
    return internal_error()


def task_response(task: asyncio.Task, req: Request) -> Response | None:
    """The answer of an async handler's finished task; None when it was cancelled."""
    if task.cancelled():
        return None
    exc = task.exception()
    return task.result() if exc is None else error_response(exc, req)


def body_too_large(max_body: int) -> Response:
    """413 for a body past ``--dapr-http-max-request-size``."""
    return Response.from_error(APIError(
        "ERR_BODY_READ", f"request body is larger than the limit of {max_body} bytes "
        "(--dapr-http-max-request-size)", http_status=413))
