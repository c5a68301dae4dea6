"""A lean AMQP 0-9-1 publisher with publisher confirms, for the hot publish path.

aiormq's ``basic_publish`` costs about 130 µs of CPU per confirmed message
(a lock, a timeout scope, a random message id, a write queue drained by a
writer task, a read queue drained by a reader task): more than the rest of a
sidecar publish together. This connection publishes on one channel in
confirm mode: frames are encoded and decoded by pamqp (except a publish's
content header and body frames, packed here around property bytes a caller may
marshal once), written straight to the transport, and confirms resolve the
waiting publishes in place. Declaring exchanges and queues, and consuming, stay
on aio-pika.

A publish completes when the broker acks it; a nack, a closed channel or
connection, or no confirm within ``timeout`` fails it (and the connection,
which the next publish reopens). A failed publish is never retried here: the
broker may already have taken it.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, header
from pamqp.body import ContentBody
from pamqp.heartbeat import Heartbeat

from .lazy_connection import LazyConnection, dial

__all__ = ["AMQPPublisher", "PublishRefused"]

_CHANNEL = 1
_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_CONTENT = struct.Struct(">HHQ")  # a content header's class (60, Basic), weight (0), body size
_FRAME_END = b"\xce"
_ACK = b"\x00\x3c\x00\x50"  # Basic.Ack: class 60, method 80


class PublishRefused(Exception):
    """The broker answered a publish with a nack."""


class _Conn(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.transport: Any = None
        self.buf = bytearray()
        self.closed = False
        self.ready = False
        self.handshake: asyncio.Queue[Any] = asyncio.Queue()
        self.tag = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.sent_at: dict[int, float] = {}
        self.watchdog: asyncio.TimerHandle | None = None
        self.heartbeat: asyncio.TimerHandle | None = None
        self.frame_max = 131072
        self.publish_heads: dict[str, bytes] = {}

    # -- transport -------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"connection to RabbitMQ lost: {exc or 'closed by the broker'}"))

    def send(self, value: Any, channel: int = _CHANNEL) -> None:
        self.transport.write(frame.marshal(value, channel))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        try:
            while end - pos >= 8:
                kind, channel, size = _HEAD.unpack_from(buf, pos)
                stop = pos + 8 + size
                if stop > end:
                    break
                if buf[stop - 1] != 0xCE:
                    raise ValueError("frame end marker missing")
                if kind == 1 and size == 13 and buf[pos + 7:pos + 11] == _ACK and self.ready:
                    tag, flags = struct.unpack_from(">QB", buf, pos + 11)
                    self._confirm(tag, bool(flags & 1), None)
                else:
                    self._frame(frame.unmarshal(bytes(buf[pos:stop]))[2])
                pos = stop
        except Exception as exc:  # a frame pamqp cannot read: the stream is lost
            self.fail(ConnectionError(f"bad frame from RabbitMQ: {exc}"))
            return
        del buf[:pos]

    def _frame(self, value: Any) -> None:
        if isinstance(value, commands.Basic.Nack):
            self._confirm(value.delivery_tag, value.multiple,
                          PublishRefused("RabbitMQ refused the message (nack)"))
        elif isinstance(value, commands.Connection.Close):
            self.send(commands.Connection.CloseOk(), 0)
            self.fail(ConnectionError(f"RabbitMQ closed the connection: {value.reply_code} "
                                      f"{value.reply_text}"))
        elif isinstance(value, commands.Channel.Close):
            self.send(commands.Channel.CloseOk())
            self.fail(ConnectionError(f"RabbitMQ closed the channel: {value.reply_code} "
                                      f"{value.reply_text}"))
        elif isinstance(value, Heartbeat | commands.Basic.Return | header.ContentHeader
                        | ContentBody):
            pass  # any frame shows the broker is alive; returns are not asked for (mandatory off)
        elif not self.ready:
            self.handshake.put_nowait(value)

    # -- publishing ------------------------------------------------------------------

    def publish(self, exchange: str, body: bytes,
                properties: commands.Basic.Properties | bytes) -> asyncio.Future:
        head = self.publish_heads.get(exchange)
        if head is None:
            head = self.publish_heads[exchange] = frame.marshal(
                commands.Basic.Publish(exchange=exchange, routing_key=""), _CHANNEL)
        # the content header and body frames are packed here: pamqp's marshal takes about
        # 7 µs a message for what is a fixed layout around the (cacheable) property bytes
        props = properties if isinstance(properties, bytes) else properties.marshal()
        content = _CONTENT.pack(60, 0, len(body)) + props
        out = [head, _HEAD.pack(2, _CHANNEL, len(content)), content, _FRAME_END]
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            chunk = body[i:i + step]
            out += (_HEAD.pack(3, _CHANNEL, len(chunk)), chunk, _FRAME_END)
        self.tag += 1
        fut = self.loop.create_future()
        self.pending[self.tag] = fut
        self.sent_at[self.tag] = self.loop.time()
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self._check)
        self.transport.write(b"".join(out))
        return fut

    def _confirm(self, tag: int, multiple: bool, exc: Exception | None) -> None:
        tags = [t for t in self.pending if t <= tag] if multiple else [tag]
        for t in tags:
            fut = self.pending.pop(t, None)
            self.sent_at.pop(t, None)
            if fut is not None and not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    def _check(self) -> None:
        self.watchdog = None
        if self.closed or not self.sent_at:
            return
        late = self.loop.time() - next(iter(self.sent_at.values()))  # oldest first
        if late >= self.timeout:
            self.fail(ConnectionError(f"RabbitMQ did not confirm within {self.timeout:g}s"))
        else:
            self.watchdog = self.loop.call_later(self.timeout - late, self._check)

    def _beat(self, every: float) -> None:
        if not self.closed:
            self.send(Heartbeat(), 0)
            self.heartbeat = self.loop.call_later(every, self._beat, every)

    def fail(self, exc: Exception) -> None:
        self.closed = True
        for timer in (self.watchdog, self.heartbeat):
            if timer is not None:
                timer.cancel()
        self.watchdog = self.heartbeat = None
        if self.transport is not None:
            self.transport.abort()
        self.handshake.put_nowait(exc)
        pending, self.pending = self.pending, {}
        self.sent_at.clear()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)


class AMQPPublisher(LazyConnection[_Conn]):
    """Confirmed publishes over one lazily (re)opened connection to an ``amqp://`` URL."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError("the lean publisher speaks plain amqp:// only")
        self.host, self.port = parts.hostname or "localhost", parts.port or 5672
        self.user = unquote(parts.username or "guest")
        self.password = unquote(parts.password or "guest")
        self.vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self.connect_timeout, self.timeout = connect_timeout, timeout

    async def _open(self) -> _Conn:
        conn = await dial(lambda: _Conn(self.timeout), self.host, self.port, self.connect_timeout,
                          "RabbitMQ")
        try:
            await asyncio.wait_for(self._handshake(conn), self.connect_timeout)
        except BaseException as exc:
            conn.fail(ConnectionError("handshake failed"))
            if isinstance(exc, asyncio.TimeoutError):
                raise ConnectionError("RabbitMQ did not complete the handshake in time") from None
            raise
        return conn

    async def _handshake(self, conn: _Conn) -> None:
        async def expect(kind: type) -> Any:
            value = await conn.handshake.get()
            if isinstance(value, Exception):
                raise value
            if not isinstance(value, kind):
                raise ConnectionError(f"RabbitMQ answered {type(value).__name__} during the handshake")
            return value

        conn.transport.write(frame.marshal(header.ProtocolHeader(), 0))
        await expect(commands.Connection.Start)
        conn.send(commands.Connection.StartOk(
            client_properties={"product": "pydapr", "capabilities": {"publisher_confirms": True,
                                                                "authentication_failure_close": True}},
            mechanism="PLAIN", response=f"\0{self.user}\0{self.password}"), 0)
        tune = await expect(commands.Connection.Tune)
        conn.frame_max = tune.frame_max or conn.frame_max
        conn.send(commands.Connection.TuneOk(channel_max=1, frame_max=conn.frame_max,
                                             heartbeat=tune.heartbeat), 0)
        conn.send(commands.Connection.Open(virtual_host=self.vhost), 0)
        await expect(commands.Connection.OpenOk)
        conn.send(commands.Channel.Open())
        await expect(commands.Channel.OpenOk)
        conn.send(commands.Confirm.Select())
        await expect(commands.Confirm.SelectOk)
        conn.ready = True
        if tune.heartbeat:
            conn._beat(tune.heartbeat / 2)

    async def publish(self, exchange: str, body: bytes,
                      properties: commands.Basic.Properties | bytes) -> None:
        """Publish to ``exchange`` (routing key empty) and wait for the broker's confirm.

        ``properties`` may be given already marshalled (``Basic.Properties.marshal()``), for
        callers that publish the same properties many times.
        """
        conn = self.conn
        if conn is None or conn.closed:
            conn = await self._connection()
        await conn.publish(exchange, body, properties)

    def publish_nowait(self, exchange: str, body: bytes,
                       properties: commands.Basic.Properties | bytes) -> asyncio.Future | None:
        """Publish on the open connection without waiting: the future of the broker's confirm,
        or None when there is no open connection (:meth:`publish` opens one)."""
        conn = self.conn
        if conn is None or conn.closed:
            return None
        return conn.publish(exchange, body, properties)

    def close(self) -> None:
        if self.conn is not None:
            if not self.conn.closed:
                self.conn.send(commands.Connection.Close(reply_code=200, reply_text="bye",
                                                         class_id=0, method_id=0), 0)
            self.conn.fail(ConnectionError("closed"))
            self.conn = None
