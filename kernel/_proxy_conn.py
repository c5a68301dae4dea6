"""One connection of the proxy loop and the streams multiplexed over it (both sides).

A :class:`ProxyConnection` is an asyncio protocol over a plain or TLS
transport. The caller side opens streams (odd ids, increasing); the callee
side receives them and hands each new stream to its handler in its own task.
Bodies travel as DATA frames no larger than the frame bound, under each
stream's window (:mod:`pydapr._proxy_stream`).

When TLS is on, the peer is verified in ``connection_made``, which asyncio
calls after the handshake and before any request byte is read; a peer that
fails verification is dropped with nothing read.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Awaitable, Callable

from ._frame_common import (ACK, DATA, DEFAULT_MAX_FRAME, END_STREAM, GOAWAY, HEADERS, PING,
                            PREFACE, RESET, WINDOW, FrameError)
from ._proxy_stream import (CANCEL, FLOW_CONTROL, INTERNAL, NO_ERROR, PROTOCOL_ERROR, REFUSED,
                            WINDOW_SIZE, BodyTooLarge, ProxyError, Stream, StreamReset)
from .frame import FrameDecoder, decode_headers, encode_frame

__all__ = ["ProxyError", "StreamReset", "BodyTooLarge", "Stream", "ProxyConnection", "WINDOW_SIZE",
           "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL", "REFUSED", "FLOW_CONTROL", "CANCEL"]

log = logging.getLogger("pydapr.proxy")

_U32 = struct.Struct("!I")
#: bytes read per call into a connection's own buffer: as much as uvloop reads per call,
#: several frames at once (a frame is at most 64 KB)
_READ_BUFFER = 256 << 10


Handler = Callable[[Stream], Awaitable[None]]


class ProxyConnection(asyncio.BufferedProtocol):
    """Frames in, frames out, streams by id. ``client`` opens streams; the other side serves them.

    A buffered protocol: the transport reads into this connection's buffer. With TLS that
    matters, since uvloop otherwise decrypts each read into a fresh 256 KB bytes object
    (an mmap, mremap and munmap per read on glibc).

    :param verify: called with the transport after the (TLS) handshake; returns the
        peer's SPIFFE id (or None without TLS) and raises to refuse the peer.
    """

    def __init__(self, client: bool, verify: Callable[[Any], str | None],
                 handler: Handler | None = None, max_frame: int = DEFAULT_MAX_FRAME,
                 max_streams: int = 1024, conns: set | None = None) -> None:
        self.client = client
        self.verify = verify
        self.handler = handler
        self.max_frame = max_frame
        self.max_streams = max_streams
        self.conns = conns
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.decoder = FrameDecoder(max_frame)
        self.streams: dict[int, Stream] = {}
        self.peer_id: str | None = None
        self.next_id = 1
        self.last_id = 0
        self.paused = False
        self.closed = False
        self.draining = False
        self.ready: asyncio.Future = self.loop.create_future()
        self._preface_left = 0 if client else len(PREFACE)
        self._drain: asyncio.Future | None = None
        self.opened = 0  # streams opened over this connection's life
        self.idle_since = self.loop.time()
        self._rbuf = memoryview(bytearray(_READ_BUFFER))
        self._out: list[bytes] | None = None  # frames written this turn of the loop

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        try:
            self.peer_id = self.verify(transport)
        except Exception as exc:
            log.warning("proxy peer refused: %s", exc)
            transport.abort()
            self.closed = True
            if not self.ready.done():
                self.ready.set_exception(ProxyError(f"peer verification failed: {exc}"))
            return
        if self.conns is not None:
            self.conns.add(self)
        if self.client:
            transport.write(PREFACE)
        if not self.ready.done():
            self.ready.set_result(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.conns is not None:
            self.conns.discard(self)
        err = ProxyError(f"connection to the other sidecar lost: {exc or 'closed'}")
        if not self.ready.done():
            self.ready.set_exception(err)
        for stream in list(self.streams.values()):
            stream._fail(err)
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drained(self) -> None:
        if self.paused and not self.closed:
            if self._drain is None or self._drain.done():
                self._drain = self.loop.create_future()
            await self._drain
        if self.closed:
            raise ProxyError("connection to the other sidecar closed")

    def write(self, data: bytes) -> None:
        """Queue frames; they leave together at the end of this turn of the event loop, so
        streams answered in the same turn share one TLS record and one system call."""
        if self.closed:
            return
        if self._out is None:
            self._out = [data]
            self.loop.call_soon(self.flush)
        else:
            self._out.append(data)

    def flush(self) -> None:
        out, self._out = self._out, None
        if out and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            self.transport.close()

    # -- frames in --------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._rbuf[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._preface_left:
            done = len(PREFACE) - self._preface_left
            take = data[:self._preface_left]
            if take != PREFACE[done:done + len(take)]:
                log.warning("proxy: a peer spoke something other than the proxy protocol")
                self.closed = True
                self.transport.abort()
                return
            self._preface_left -= len(take)
            data = data[len(take):]
            if not data:
                return
        try:
            frames = self.decoder.feed(data)
            for ftype, flags, sid, payload in frames:
                self._frame(ftype, flags, sid, payload)
        except FrameError as exc:
            log.warning("proxy: protocol error from peer %s: %s", self.peer_id or "?", exc)
            self.goaway(PROTOCOL_ERROR, str(exc))
            self.flush()
            self.transport.abort()

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == DATA:
            stream = self.streams.get(sid)
            if stream is not None:
                stream._on_data(payload, bool(flags & END_STREAM))
        elif ftype == HEADERS:
            stream = self.streams.get(sid)
            pairs = decode_headers(payload)
            if stream is not None:
                stream._on_headers(pairs, bool(flags & END_STREAM))
            elif not self.client:
                self._new_stream(sid, pairs, bool(flags & END_STREAM))
        elif ftype == WINDOW:
            stream = self.streams.get(sid)
            if stream is not None and len(payload) == 4:
                stream._on_window(_U32.unpack(payload)[0])
        elif ftype == RESET:
            stream = self.streams.pop(sid, None)
            if stream is not None:
                self._idle_check()
                code = _U32.unpack(payload[:4])[0] if len(payload) >= 4 else INTERNAL
                stream._fail(StreamReset(code, payload[4:].decode("utf-8", "replace")))
                if stream.task is not None and not self.client:
                    stream.task.cancel()
        elif ftype == PING:
            if not flags & ACK:
                self.write(encode_frame(PING, ACK, 0, payload[:8]))
        elif ftype == GOAWAY:
            self.draining = True
            last = _U32.unpack(payload[:4])[0] if len(payload) >= 4 else 0
            for stream_id, stream in list(self.streams.items()):
                if stream_id > last:
                    self.streams.pop(stream_id, None)
                    stream._fail(StreamReset(REFUSED, "the other sidecar is shutting down"))
        # unknown frame types are ignored, so later versions can add some

    def _new_stream(self, sid: int, pairs: list[tuple[str, str]], end: bool) -> None:
        if sid % 2 == 0 or sid <= self.last_id:
            raise FrameError(f"stream id {sid} is not a new caller stream")
        self.last_id = sid
        stream = Stream(self, sid)
        if self.draining or len(self.streams) >= self.max_streams:
            self.write(_reset_frame(sid, REFUSED, "too many streams" if not self.draining
                                    else "shutting down"))
            return
        self.streams[sid] = stream
        stream._on_headers(pairs, end)
        assert self.handler is not None
        stream.task = self.loop.create_task(self._serve(stream))

    async def _serve(self, stream: Stream) -> None:
        try:
            await self.handler(stream)  # type: ignore[misc]
        except asyncio.CancelledError:
            pass
        except ProxyError:
            pass
        except Exception:
            log.exception("proxy: handler failed on stream %d", stream.id)
            if not stream._local_ended:
                self.reset_stream(stream, INTERNAL, "internal error in the callee's sidecar")
        finally:
            stream.task = None
            if not stream._local_ended and stream._error is None:
                self.reset_stream(stream, INTERNAL, "no response")
            self.streams.pop(stream.id, None)

    # -- streams out ----------------------------------------------------------------------

    def open_stream(self) -> Stream:
        sid = self.next_id
        self.next_id += 2
        if self.next_id > 0x7FFFFFFF:
            self.draining = True
        stream = Stream(self, sid)
        self.streams[sid] = stream
        self.opened += 1
        return stream

    def reset_stream(self, stream: Stream, code: int, reason: str) -> None:
        if self.streams.pop(stream.id, None) is not None or not stream.finished:
            self.write(_reset_frame(stream.id, code, reason))
            self._idle_check()
        stream._fail(StreamReset(code, reason) if code != CANCEL
                     else ProxyError(f"stream cancelled: {reason}"))

    def maybe_forget(self, stream: Stream) -> None:
        if stream._local_ended and stream._remote_ended and stream.task is None:
            self.streams.pop(stream.id, None)
            self._idle_check()

    def _idle_check(self) -> None:
        if not self.streams:
            self.idle_since = self.loop.time()
            if self.client and self.draining:
                self.close()  # retired (GOAWAY or a certificate rotation): its last stream is done

    def goaway(self, code: int = NO_ERROR, reason: str = "") -> None:
        """Refuse new streams; tell the peer which streams were taken."""
        self.draining = True
        self.write(encode_frame(GOAWAY, 0, 0, _U32.pack(self.last_id) + _U32.pack(code)
                                + reason.encode()[:256]))

    @property
    def load(self) -> int:
        return len(self.streams)


def _reset_frame(sid: int, code: int, reason: str) -> bytes:
    return encode_frame(RESET, 0, sid, _U32.pack(code) + reason.encode("utf-8")[:256])
