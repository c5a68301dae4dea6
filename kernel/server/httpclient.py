"""A small pooled HTTP/1.1 client (asyncio + httptools) for the app channel and sidecar calls.

Keep-alive connections are reused LIFO; a connection the server closes or
that fails mid-response is dropped, never reused. When a reused connection
fails, the request is sent once more on a fresh one if it never left, or if its
method is safe (GET, HEAD, OPTIONS, TRACE): a POST the peer may have acted on is
not sent twice. Response bodies are capped.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_mod
from typing import Any

import httptools

__all__ = ["ClientResponse", "HTTPClientPool", "HTTPClientError"]


class HTTPClientError(ConnectionError):
    """The peer could not be reached or broke the exchange."""


class ClientResponse:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str, default: str = "") -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default


class _Conn(asyncio.Protocol):
    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.closed = False
        self.keep_alive = True
        self.written = False  # whether the last send reached the transport

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # cached: asyncio.get_running_loop() makes a getpid() system call on every call
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPClientError(f"connection closed by the peer: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPClientError(f"malformed HTTP response: {exc}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self._fail(HTTPClientError(f"response body larger than {self.max_body} bytes"))
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(ClientResponse(self.parser.get_status_code(), self.headers,
                                                  b"".join(self.body)))

    def send(self, data: bytes) -> asyncio.Future:
        self.headers, self.body, self.size = [], [], 0
        self.waiter = self.loop.create_future()
        self.written = not (self.closed or self.transport.is_closing())
        if self.written:
            self.transport.write(data)
        else:
            self.waiter.set_exception(HTTPClientError("connection closed by the peer"))
        return self.waiter


#: methods sent again after a reused connection failed mid-exchange: the safe ones, as Go's
#: client (daprd's) decides; PUT and DELETE are idempotent by RFC 9110 but apps do not all agree
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class HTTPClientPool:
    """Connections to one ``host:port`` (optionally TLS, not verified: Dapr's app channel rule)."""

    def __init__(self, host: str, port: int, *, use_tls: bool = False, max_idle: int = 128,
                 max_body: int = 4 << 20, timeout: float = 60.0) -> None:
        self.host, self.port = host, port
        self.max_idle, self.max_body, self.timeout = max_idle, max_body, timeout
        self.idle: list[_Conn] = []
        self.ssl: ssl_mod.SSLContext | None = None
        if use_tls:
            ctx = ssl_mod.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl_mod.CERT_NONE
            self.ssl = ctx
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.host_header = hostport.encode()

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self.max_body), self.host, self.port,
                                                   ssl=self.ssl)
        except OSError as exc:
            raise HTTPClientError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        return conn

    async def request(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                      body: bytes = b"", timeout: float | None = None) -> ClientResponse:
        """Send one request; ``target`` is the path with its query string."""
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", self.host_header,
                b"\r\n"]
        for k, v in headers or ():
            if "\r" in v or "\n" in v:
                continue
            head.append(f"{k}: {v}\r\n".encode("latin-1", "replace"))
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        data = b"".join(head) + body
        conn = None
        while self.idle:  # the peer may have closed idle ones (a keep-alive timeout)
            conn = self.idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                break
            conn = None
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        waiter = conn.send(data)
        # a timer on the response future (cheaper per request than asyncio.wait_for's task)
        timer = conn.loop.call_later(timeout or self.timeout, _expire, waiter)
        try:
            resp = await waiter
        except HTTPClientError:
            # a stale keep-alive connection: retry once on a fresh one, unless the peer may
            # have acted on a request that is not safe to send twice
            if reused and (not conn.written or method in _IDEMPOTENT):
                return await self.request(method, target, headers, body, timeout)
            raise
        except BaseException:
            conn.transport.close()
            raise
        finally:
            timer.cancel()
        if conn.keep_alive and not conn.closed and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            conn.transport.close()
        return resp

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()
