"""One stream of the proxy loop: a request/response exchange with a bounded receive window.

Reads yield body chunks; writes wait for window and for transport room. A
sender may have at most :data:`WINDOW_SIZE` unacknowledged bytes in flight;
the receiver grants more (``WINDOW`` frames) as its reader consumes them, so
neither side buffers more than one window per stream, whatever the body size.
The connection that carries streams is :class:`pydapr._proxy_conn.ProxyConnection`.
"""
from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import TYPE_CHECKING

from ._frame_common import DATA, END_STREAM, HEADERS, WINDOW, FrameError
from .frame import encode_data, encode_frame, encode_headers

if TYPE_CHECKING:
    from ._proxy_conn import ProxyConnection

__all__ = ["ProxyError", "StreamReset", "BodyTooLarge", "Stream", "WINDOW_SIZE",
           "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL", "REFUSED", "FLOW_CONTROL", "CANCEL"]

#: bytes a stream may receive before its reader acknowledges them
WINDOW_SIZE = 256 * 1024
_ACK_AT = WINDOW_SIZE // 4

# RESET / GOAWAY codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL, REFUSED, FLOW_CONTROL, CANCEL = 0, 1, 2, 3, 4, 5

_U32 = struct.Struct("!I")


class ProxyError(ConnectionError):
    """The connection to the other sidecar failed or broke.

    :param retryable: the request certainly did not reach the callee's app
        (connection refused, stream refused before processing), so sending it
        again cannot run it twice.
    """

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class StreamReset(ProxyError):
    """The peer reset the stream (``code`` is one of the RESET codes)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"stream reset by the peer ({code}): {reason}", retryable=code == REFUSED)
        self.code = code


class Stream:
    """One request/response exchange. Reads yield body chunks; writes respect the window."""

    __slots__ = ("conn", "id", "headers", "trailers", "peer_id", "task", "_chunks", "_received", "_unacked",
                 "_remote_ended", "_local_ended", "_error", "_waiter", "_send_window",
                 "_window_waiter", "_headers_future")

    def __init__(self, conn: ProxyConnection, stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers: list[tuple[str, str]] = []
        #: a second header block, sent with the end of the stream (gRPC status, say)
        self.trailers: list[tuple[str, str]] | None = None
        self.peer_id: str | None = conn.peer_id
        self.task: asyncio.Task | None = None
        self._chunks: deque[bytes] = deque()
        self._received = 0   # bytes buffered, not yet read
        self._unacked = 0    # bytes read, not yet granted back to the sender
        self._remote_ended = False
        self._local_ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._send_window = WINDOW_SIZE
        self._window_waiter: asyncio.Future | None = None
        self._headers_future: asyncio.Future | None = None

    # -- receiving ------------------------------------------------------------------------

    async def response(self) -> list[tuple[str, str]]:
        """The peer's header block (caller side: the response head)."""
        if self.headers:
            return self.headers
        if self._error is not None:
            raise self._error
        self._headers_future = self.conn.loop.create_future()
        return await self._headers_future

    async def read(self) -> bytes:
        """The next body chunk, ``b""`` at the end of the body.

        :raises ProxyError: when the stream was reset or the connection lost.
        """
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._received -= len(chunk)
                self._consumed(len(chunk))
                return chunk
            if self._remote_ended:  # the whole body arrived, even if a reset followed it
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self.conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def read_all(self, limit: int) -> bytes:
        """The whole remaining body.

        :raises BodyTooLarge: past ``limit`` bytes; the caller answers and resets the stream.
        """
        if self._remote_ended:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._received = 0
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        else:
            parts = []
            size = 0
            while True:
                chunk = await self.read()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"body larger than {limit} bytes")
                parts.append(chunk)
            data = b"".join(parts)
        if len(data) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        return data

    def _consumed(self, n: int) -> None:
        if self._remote_ended:
            return
        self._unacked += n
        if self._unacked >= _ACK_AT:
            self.conn.write(encode_frame(WINDOW, 0, self.id, _U32.pack(self._unacked)))
            self._unacked = 0

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_headers(self, pairs: list[tuple[str, str]], end: bool) -> None:
        if self.headers:
            self.trailers = pairs
        else:
            self.headers = pairs
        if end:
            self._remote_ended = True
            self.conn.maybe_forget(self)
        f = self._headers_future
        if f is not None and not f.done():
            f.set_result(pairs)
        self._wake()

    def _on_data(self, payload: bytes, end: bool) -> None:
        if self._remote_ended:
            self.conn.reset_stream(self, PROTOCOL_ERROR, "data after end of stream")
            return
        if payload:
            self._received += len(payload)
            if self._received + self._unacked > WINDOW_SIZE:
                self.conn.reset_stream(self, FLOW_CONTROL, "window exceeded")
                return
            self._chunks.append(payload)
        if end:
            self._remote_ended = True
            self.conn.maybe_forget(self)
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()
        for f in (self._headers_future, self._window_waiter):
            if f is not None and not f.done():
                f.set_exception(exc)
                f.exception()  # mark retrieved: nobody may be waiting any more

    # -- sending ----------------------------------------------------------------------------

    def send_headers(self, pairs: list[tuple[str, str]], end_stream: bool = False) -> None:
        """Send the header block (the request or response head).

        :raises FrameError: when the header block does not fit in one frame.
        """
        if self._error is not None:
            raise self._error
        self.conn.write(self._head(pairs, END_STREAM if end_stream else 0))
        if end_stream:
            self._local_ended = True
            self.conn.maybe_forget(self)

    def _head(self, pairs: list[tuple[str, str]], flags: int) -> bytes:
        block = encode_headers(pairs)
        if len(block) > self.conn.max_frame:
            raise FrameError(f"header block of {len(block)} bytes exceeds the frame bound "
                             f"of {self.conn.max_frame}")
        return encode_frame(HEADERS, flags, self.id, block)

    async def send(self, pairs: list[tuple[str, str]], body: bytes) -> None:
        """Header block and the whole body, in one write when the window allows."""
        if self._error is not None:
            raise self._error
        if not body:
            self.send_headers(pairs, True)
            return
        if len(body) <= self._send_window and not self.conn.paused:
            self._send_window -= len(body)
            self.conn.write(self._head(pairs, 0)
                            + encode_data(self.id, body, True, self.conn.max_frame))
            self._local_ended = True
            self.conn.maybe_forget(self)
            return
        self.send_headers(pairs, False)
        await self.write(body, True)

    async def write(self, data: bytes, end_stream: bool = False) -> None:
        """Send body bytes, waiting for window and transport room as needed."""
        view = memoryview(data)
        while True:
            if self._error is not None:
                raise self._error
            if self.conn.paused:
                await self.conn.drained()
                continue
            n = len(view)
            room = self._send_window
            if n <= room:
                self._send_window -= n
                self.conn.write(encode_data(self.id, view, end_stream, self.conn.max_frame))
                break
            if room > 0:
                self._send_window = 0
                self.conn.write(encode_data(self.id, view[:room], False, self.conn.max_frame))
                view = view[room:]
            self._window_waiter = self.conn.loop.create_future()
            try:
                await self._window_waiter
            finally:
                self._window_waiter = None
        if end_stream:
            self._local_ended = True
            self.conn.maybe_forget(self)

    def end(self) -> None:
        """End the body (an empty DATA frame with END_STREAM)."""
        if not self._local_ended and self._error is None:
            self.conn.write(encode_frame(DATA, END_STREAM, self.id))
            self._local_ended = True
            self.conn.maybe_forget(self)

    def _on_window(self, increment: int) -> None:
        self._send_window += increment
        w = self._window_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def reset(self, code: int = CANCEL, reason: str = "") -> None:
        """Abandon the stream and tell the peer."""
        self.conn.reset_stream(self, code, reason)

    @property
    def finished(self) -> bool:
        return (self._local_ended and self._remote_ended) or self._error is not None


class BodyTooLarge(ProxyError):
    """A body exceeded the receiver's limit; the stream was reset."""
