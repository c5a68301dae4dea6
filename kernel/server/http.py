"""The HTTP/1.1 API server: an asyncio protocol over httptools, built for uvloop.

Limits are enforced while reading: header bytes (431 and close), body size
(413 and close, checked against Content-Length before the body arrives and
counted while it streams), the time to receive a request's headers once it
has begun (408 and close) and the idle keep-alive time. Requests on one
connection are answered in order; a synchronous handler answers inline with
no task created, which is what keeps trivial routes fast.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import httptools

from ..errors import APIError
from .request import NO_CONTENT, Request, Response

__all__ = ["HTTPLimits", "HTTPServerProtocol", "DispatchCell", "serve_http", "render"]

log = logging.getLogger("pydapr.http")

Dispatch = Callable[[Request], "Response | Awaitable[Response]"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_MAX_PIPELINED = 16  # queued requests on one connection before reading pauses
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")}
_STATUS_LINES: dict[int, bytes] = {}
_SERVER = b"server: pydapr\r\n"


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


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode())
    return line


def render(resp: Response, keep_alive: bool = True, head: bool = False) -> bytes:
    """Serialise a response (Content-Length framing)."""
    parts = [_status_line(resp.status), _SERVER]
    if resp.content_type:
        parts.append(b"content-type: " + resp.content_type.encode("latin-1") + b"\r\n")
    if resp.headers:
        for name, value in resp.headers:
            # refuse header injection from anything that reaches a response header
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                continue
            parts.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    body = resp.body
    if resp.status != 204 and resp.status != 304 and not (100 <= resp.status < 200):
        parts.append(b"content-length: %d\r\n" % len(body))
    else:
        body = b""
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


def _plain_error(status: int, text: str) -> bytes:
    body = text.encode()
    return (_status_line(status) + _SERVER + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)


class HTTPServerProtocol(asyncio.Protocol):
    __slots__ = ("cell", "limits", "loop", "transport", "parser", "url", "headers",
                 "header_bytes", "body", "body_len", "queue", "busy", "deadline", "closing", "peer",
                 "conns", "content_length", "started", "paused")

    def __init__(self, cell: DispatchCell, limits: HTTPLimits, conns: set) -> None:
        self.cell = cell
        self.limits = limits
        self.conns = conns
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length = -1
        self.started = False
        self.paused = False
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_len = 0
        self.queue: deque[tuple[Request, bool]] = deque()
        self.busy = False
        # one sweeper per server checks deadlines (no timer armed per request): 0 = none
        self.deadline = 0.0
        self.closing = False
        self.peer: Any = None

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.conns.add(self)
        self._arm(self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrade is not supported")
        except httptools.HttpParserError as exc:
            if not self.closing:
                self._fail(400, f"malformed HTTP request: {exc}")

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds

    def check_deadline(self, now: float) -> None:
        """Called by the server's sweeper about once a second."""
        if self.deadline and now > self.deadline:
            self.deadline = 0.0
            self._timed_out()

    def _timed_out(self) -> None:
        if self.busy or self.closing:
            return
        if self.started:
            self._fail(408, "request not received in time")
        else:
            self.closing = True
            self.transport.close()

    def _fail(self, status: int, text: str) -> None:
        """Answer a protocol-level error in plain text and close the connection."""
        if self.closing:
            return
        self.closing = True
        if not self.busy:
            self.transport.write(_plain_error(status, text))
        self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle, else after the response in progress."""
        if not self.busy and not self.closing:
            self.closing = True
            self.transport.close()
        self.closing = True

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.content_length = -1
        self.header_bytes = 0
        self.body = []
        self.body_len = 0
        self.started = True
        self.deadline = self.loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.limits.max_header_bytes:
            self._fail(414, "request line too long")
            raise httptools.HttpParserError("too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.limits.max_header_bytes:
            self._fail(431, "request headers too large")
            raise httptools.HttpParserError("too large")
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self.content_length = int(value)

    def on_headers_complete(self) -> None:
        if self.content_length > self.limits.max_body:
            self._reject_large()
            raise httptools.HttpParserError("too large")
        self.deadline = self.loop.time() + self.limits.body_timeout

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        if self.body_len > self.limits.max_body:
            self._reject_large()
            raise httptools.HttpParserError("too large")
        self.body.append(body)

    def _reject_large(self) -> None:
        err = APIError("ERR_BODY_READ",
                       f"request body is larger than the limit of {self.limits.max_body} bytes "
                       "(--dapr-http-max-request-size)", http_status=413)
        if not self.busy and not self.closing:
            self.transport.write(render(Response.from_error(err), keep_alive=False))
        self.closing = True
        self.transport.close()

    def on_message_complete(self) -> None:
        self.deadline = 0.0
        self.started = False
        url = self.url.decode("latin-1")
        path, _, query = url.partition("?")
        method = _METHODS.get(self.parser.get_method()) or self.parser.get_method().decode("latin-1")
        body = b"".join(self.body) if self.body else b""
        req = Request(method, path, query, None, body, self.peer, self.headers)
        keep_alive = self.parser.should_keep_alive()
        if self.busy:
            self.queue.append((req, keep_alive))
            if len(self.queue) >= _MAX_PIPELINED and not self.paused:
                self.paused = True  # a client racing ahead: stop reading until we catch up
                self.transport.pause_reading()
            return
        self._handle(req, keep_alive)

    # -- dispatch ---------------------------------------------------------------------------

    def _handle(self, req: Request, keep_alive: bool) -> None:
        try:
            result = self.cell.fn(req)
        except APIError as err:
            result = Response.from_error(err)
        except Exception:  # a bug must not kill the connection loop
            log.exception("unhandled error in %s %s", req.method, req.path)
            result = _internal_error()
        if type(result) is Response:
            self._write(result, keep_alive, req.method == "HEAD")
            return
        self.busy = True
        task = self.loop.create_task(result)
        task.add_done_callback(lambda t: self._finished(t, req, keep_alive))

    def _finished(self, task: asyncio.Task, req: Request, keep_alive: bool) -> None:
        self.busy = False
        if task.cancelled():
            resp = Response.text(503, "sidecar is shutting down")
            keep_alive = False
        else:
            exc = task.exception()
            if exc is None:
                resp = task.result()
            elif isinstance(exc, APIError):
                resp = Response.from_error(exc)
            else:
                log.error("unhandled error in %s %s", req.method, req.path, exc_info=exc)
                resp = _internal_error()
        self._write(resp, keep_alive, req.method == "HEAD")
        if self.transport.is_closing():
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        while self.queue and not self.busy and not self.transport.is_closing():
            nreq, nka = self.queue.popleft()
            self._handle(nreq, nka)

    def _write(self, resp: Response, keep_alive: bool, head: bool) -> None:
        if self.transport.is_closing():
            return
        keep_alive = keep_alive and not self.closing
        if resp is NO_CONTENT and keep_alive:
            self.transport.write(_NO_CONTENT_KEEP_ALIVE)  # health checks: no rendering at all
        else:
            self.transport.write(render(resp, keep_alive, head))
        if not keep_alive:
            self.closing = True
            self.transport.close()
        elif not self.busy:
            self._arm(self.limits.idle_timeout)


conns_sweeper: dict[int, asyncio.Task] = {}
_NO_CONTENT_KEEP_ALIVE = render(NO_CONTENT)


def _internal_error() -> Response:
    err = APIError("ERROR", "internal error in the sidecar; see its log")
    return Response.from_error(err)


async def serve_http(dispatch: Dispatch | DispatchCell, hosts: list[str], port: int,
                     limits: HTTPLimits = HTTPLimits(), sock: Any = None) -> tuple[list, set]:
    """Listen on each host; returns the asyncio servers and the live connection set.

    :param dispatch: the request handler, or a :class:`DispatchCell` to swap it later.
    """
    loop = asyncio.get_running_loop()
    conns: set = set()
    cell = dispatch if isinstance(dispatch, DispatchCell) else DispatchCell(dispatch)

    def factory() -> HTTPServerProtocol:
        return HTTPServerProtocol(cell, limits, conns)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(1.0, limits.header_timeout / 4))
            if not any(srv.is_serving() for srv in servers) and not conns:
                return  # every listener closed and every connection gone
            now = loop.time()
            for conn in list(conns):
                conn.check_deadline(now)

    sweeper = loop.create_task(sweep())
    servers = []
    if sock is not None:
        servers.append(await loop.create_server(factory, sock=sock, backlog=1024))
    else:
        for host in hosts:
            servers.append(await loop.create_server(factory, host, port, backlog=1024,
                                                    reuse_address=True))
    conns_sweeper[id(conns)] = sweeper  # keep a reference while it runs
    sweeper.add_done_callback(lambda _: conns_sweeper.pop(id(conns), None))
    return servers, conns
