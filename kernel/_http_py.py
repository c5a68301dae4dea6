"""The HTTP/1.1 connection protocol of the API server, over httptools: the reference twin.

Limits are enforced while reading: header bytes (431 and close), body size
(413 and close, checked against Content-Length before the body arrives and
counted while it streams), the time to receive a request's headers once it
has begun (408 and close) and the idle keep-alive time. Requests on one
connection are answered in order; a synchronous handler answers inline with
no task created, which is what keeps trivial routes fast.

This module is authoritative; :mod:`pydapr._speedups._http` reproduces its
bytes and close behaviour (``tests/unit/kernel/test_http_parity.py`` feeds
both the same byte streams). Import it through :mod:`pydapr.http_protocol`.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import httptools

from ._http_common import (MAX_PIPELINED, METHODS, SERVER, DispatchCell, HTTPLimits,
                           body_too_large, error_response, plain_error, status_line, task_response)
from .server.request import NO_CONTENT, Request, Response

__all__ = ["HTTPServerProtocol", "render"]


def render(resp: Response, keep_alive: bool = True, head: bool = False) -> bytes:
    """Serialise a response (Content-Length framing)."""
    parts = [status_line(resp.status), SERVER]
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


_NO_CONTENT_KEEP_ALIVE = render(NO_CONTENT)


class HTTPServerProtocol(asyncio.Protocol):
    """One client connection: parse, enforce limits, dispatch, answer in order."""

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
            self.transport.write(plain_error(status, text))
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
        if not self.busy and not self.closing:
            self.transport.write(render(body_too_large(self.limits.max_body), keep_alive=False))
        self.closing = True
        self.transport.close()

    def on_message_complete(self) -> None:
        self.deadline = 0.0
        self.started = False
        url = self.url.decode("latin-1")
        path, _, query = url.partition("?")
        method = METHODS.get(self.parser.get_method()) or self.parser.get_method().decode("latin-1")
        body = b"".join(self.body) if self.body else b""
        req = Request(method, path, query, None, body, self.peer, self.headers)
        keep_alive = self.parser.should_keep_alive()
        if self.busy:
            self.queue.append((req, keep_alive))
            if len(self.queue) >= MAX_PIPELINED and not self.paused:
                self.paused = True  # a client racing ahead: stop reading until we catch up
                self.transport.pause_reading()
            return
        self._handle(req, keep_alive)

    # -- dispatch ---------------------------------------------------------------------------

    def _handle(self, req: Request, keep_alive: bool) -> None:
        try:
            result = self.cell.fn(req)
        except Exception as exc:  # a bug must not kill the connection loop
            result = error_response(exc, req)
        if type(result) is Response:
            self._write(result, keep_alive, req.method == "HEAD")
            return
        self.busy = True
        # a future (a broker's confirmation, say) is waited on as it is: no task around it
        task = result if asyncio.isfuture(result) else self.loop.create_task(result)
        task.add_done_callback(lambda t: self._finished(t, req, keep_alive))

    def _finished(self, task: asyncio.Task, req: Request, keep_alive: bool) -> None:
        self.busy = False
        resp = task_response(task, req)
        if resp is None:
            resp = Response.text(503, "sidecar is shutting down")
            keep_alive = False
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
