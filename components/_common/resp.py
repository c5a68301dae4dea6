"""A lean pipelined Redis connection for the hot single-command paths (state GET, publish).

redis-py spends most of a one-command call's time in its own machinery
(connection pool, retry wrapper, timeouts, observability hooks): profiled at
about 60 % of a sidecar state GET. Those paths go instead through this small
RESP2 protocol: one connection, commands pipelined in order, replies matched
first in first out, one watchdog timer per connection. Everything else
(transactions, blocking reads, loading scripts) stays on redis-py. A failed or timed-out
exchange closes the connection (and fails what was in flight with
:class:`ConnectionError`); the next command reconnects.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_mod
from collections import deque
from typing import TYPE_CHECKING, Any

from .lazy_connection import LazyConnection, dial

if TYPE_CHECKING:
    from .redis_settings import RedisSettings

__all__ = ["ReplyError", "RESPClient", "encode", "lean_connection"]


class ReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete(Exception):
    pass


def encode(args: tuple[Any, ...] | list[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if type(a) is not bytes:
            a = a.encode() if type(a) is str else str(a).encode()
        out += (b"$%d\r\n" % len(a), a, b"\r\n")  # the value is copied once, by the join
    return b"".join(out)


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos], bytes(buf[pos + 1:end])
    pos = end + 2
    if kind == 36:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return bytes(buf[pos:pos + n]), pos + n + 2
    if kind == 42:  # * array
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 58:  # : integer
        return int(line), pos
    if kind == 43:  # + simple string
        return line, pos
    if kind == 45:  # - error
        return ReplyError(line.decode("utf-8", "replace")), pos
    raise ConnectionError(f"unexpected reply type {chr(kind)!r} from Redis")


class _Conn(asyncio.Protocol):
    """One connection; a watchdog (one timer, not one per command) fails it when the oldest
    unanswered command is older than ``timeout``."""

    def __init__(self, timeout: float) -> None:
        self.buf = bytearray()
        self.waiters: deque[asyncio.Future] = deque()
        self.sent_at: deque[float] = deque()  # parallel to waiters
        self.strict: deque[bool] = deque()  # parallel to waiters: an error reply fails the future
        self.transport: Any = None
        self.closed = False
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, args: tuple[Any, ...] | list[Any], strict: bool = False) -> asyncio.Future:
        """The future of the reply; an error reply is its result, or with ``strict`` its failure."""
        fut = self.loop.create_future()
        if not self.waiters and self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self._check)
        self.waiters.append(fut)
        self.sent_at.append(self.loop.time())
        self.strict.append(strict)
        self.transport.write(encode(args))
        return fut

    def _check(self) -> None:
        self.watchdog = None
        if not self.waiters or self.closed:
            return
        late = self.loop.time() - self.sent_at[0]
        if late >= self.timeout:
            self.fail(ConnectionError(f"Redis did not answer within {self.timeout:g}s"))
        else:
            self.watchdog = self.loop.call_later(self.timeout - late, self._check)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        waiters, sent_at, strict = self.waiters, self.sent_at, self.strict
        try:
            while waiters and pos < len(self.buf):
                value, pos = _parse(self.buf, pos)
                fut = waiters.popleft()
                sent_at.popleft()
                if fut.done():
                    strict.popleft()
                elif strict.popleft() and isinstance(value, ReplyError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self.fail(ConnectionError(f"bad reply from Redis: {exc}"))
            return
        if pos:
            del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None:
            self.transport.abort()
        self.sent_at.clear()
        self.strict.clear()
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)


class RESPClient(LazyConnection[_Conn]):
    """Commands over one lazily (re)opened, pipelined connection."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str = "", password: str = "",
                 tls: bool = False, connect_timeout: float = 5.0, timeout: float = 5.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.ssl = ssl_mod.create_default_context() if tls else None
        self.connect_timeout, self.timeout = connect_timeout, timeout

    async def _open(self) -> _Conn:
        conn = await dial(lambda: _Conn(self.timeout), self.host, self.port, self.connect_timeout,
                          "Redis", self.ssl)
        setup = []
        if self.password:
            setup.append(("AUTH", self.username, self.password) if self.username
                         else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        for cmd in setup:
            reply = await conn.send(cmd)
            if isinstance(reply, ReplyError):
                conn.fail(ConnectionError("Redis refused the connection setup"))
                raise ConnectionError(f"Redis refused {cmd[0]}: {reply}")
        return conn

    async def call(self, *args: Any) -> Any:
        """One command's reply (an error reply is returned as :class:`ReplyError`)."""
        conn = self.conn
        if conn is None or conn.closed:
            conn = await self._connection()
        return await conn.send(args)

    def send_nowait(self, *args: Any) -> asyncio.Future | None:
        """Send on the open connection without waiting: the future of the reply, which an error
        reply fails; None when there is no open connection (:meth:`call` opens one)."""
        conn = self.conn
        if conn is None or conn.closed:
            return None
        return conn.send(args, strict=True)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.fail(ConnectionError("closed"))
            self.conn = None


def lean_connection(settings: RedisSettings) -> RESPClient:
    """A :class:`RESPClient` to the server of ``settings`` (it connects on first use)."""
    from .redis_settings import host_port
    host, port = host_port(settings)
    return RESPClient(host, port, db=settings.redis_db,
                      username=settings.redis_username, password=settings.redis_password,
                      tls=settings.enable_tls, connect_timeout=settings.dial_timeout,
                      timeout=settings.read_timeout)
