"""The sidecar-to-sidecar proxy loop: one internal port, multiplexed streams, mTLS when enabled.

The callee side (:class:`ProxyServer`) listens on ``--dapr-internal-grpc-port``
(a free port when unset) and hands every incoming stream to a handler; the
caller side (:class:`ProxyClient`) keeps a small pool of connections per
target and multiplexes requests over them. The wire format is a framed
protocol of our own (:mod:`pydapr._frame_common`, codec in :mod:`pydapr.frame`).

Security comes from a :class:`~pydapr.proxy_tls.TransportSecurity`:

* mTLS off (:data:`~pydapr.proxy_tls.PLAINTEXT`): plain TCP, callers unverified;
* mTLS on: both sides verify the peer as a SPIFFE X.509-SVID right after the
  handshake. The caller pins the exact SPIFFE id of the app it meant to reach;
  the callee takes the caller's identity from the TLS session only
  (``Stream.peer_id``), never from a header. Each new connection takes the
  current certificate, so renewals need no restart and drop no connection.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from ._frame_common import DEFAULT_MAX_FRAME
from ._proxy_conn import (CANCEL, ProxyConnection, ProxyError, Stream, StreamReset, WINDOW_SIZE,
                          Handler)
from .proxy_tls import PLAINTEXT, TransportSecurity

__all__ = ["ProxyServer", "ProxyClient", "ProxyError", "StreamReset", "Stream", "WINDOW_SIZE"]

log = logging.getLogger("pydapr.proxy")


class ProxyServer:
    """The callee side: accepts connections and serves each stream with ``handler(stream)``.

    :param handler: ``async handler(stream)``; it reads ``stream.headers`` and the body,
        then answers with ``stream.send_headers``/``send``/``write``.
    :param max_streams: concurrent streams per connection; more are refused (retryable).
    :param idle_timeout: a connection without streams for this long is closed.
    """

    def __init__(self, handler: Handler, security: TransportSecurity = PLAINTEXT, *,
                 max_frame: int = DEFAULT_MAX_FRAME, max_streams: int = 1024,
                 handshake_timeout: float = 10.0, idle_timeout: float = 300.0) -> None:
        self.handler = handler
        self.idle_timeout = idle_timeout
        self._reaper: asyncio.TimerHandle | None = None
        self.security = security
        self.max_frame = max_frame
        self.max_streams = max_streams
        self.handshake_timeout = handshake_timeout
        self.conns: set[ProxyConnection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    def _verify(self, transport: Any) -> str | None:
        if not self.security.enabled:
            return None
        return self.security.verify_caller(transport.get_extra_info("ssl_object"))

    async def start(self, host: str = "127.0.0.1", port: int | None = None) -> int:
        """Listen on ``host:port`` (a free port when ``port`` is None or 0); returns the port."""
        loop = asyncio.get_running_loop()
        ctx = self.security.server_context()

        def factory() -> ProxyConnection:
            return ProxyConnection(False, self._verify, self.handler, self.max_frame,
                                   self.max_streams, self.conns)

        kwargs: dict[str, Any] = {"backlog": 1024, "reuse_address": True}
        if ctx is not None:
            kwargs.update(ssl=ctx, ssl_handshake_timeout=self.handshake_timeout)
        self.server = await loop.create_server(factory, host, port or 0, **kwargs)
        self.port = self.server.sockets[0].getsockname()[1]
        self._reaper = loop.call_later(self.idle_timeout / 4, self._reap)
        return self.port

    def _reap(self) -> None:
        """Close connections that carried no stream for ``idle_timeout`` (callers close sooner)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self.conns):
            if not conn.streams and now - conn.idle_since > self.idle_timeout:
                conn.goaway(reason="idle")
                conn.close()
        self._reaper = loop.call_later(self.idle_timeout / 4, self._reap)

    async def stop(self, grace: float = 2.0) -> None:
        """Refuse new streams (GOAWAY), let running ones finish within ``grace``, then close."""
        if self._reaper is not None:
            self._reaper.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.conns):
            conn.goaway()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.streams for c in self.conns) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.conns):
            conn.close()


class ProxyClient:
    """The caller side: pooled connections per (host, port, expected SPIFFE id).

    A request goes to the least-loaded open connection of its target; a new one
    is opened only when every connection carries ``streams_per_conn`` streams
    and fewer than ``max_conns`` exist. Connections idle for ``idle_timeout``
    are closed by this side, before the callee would.
    """

    def __init__(self, security: TransportSecurity = PLAINTEXT, *, max_conns: int = 4,
                 streams_per_conn: int = 128, connect_timeout: float = 5.0,
                 idle_timeout: float = 60.0, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.security = security
        self.max_conns = max_conns
        self.streams_per_conn = streams_per_conn
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_frame = max_frame
        self._pools: dict[tuple, list[ProxyConnection]] = {}
        self._pending: dict[tuple, asyncio.Future] = {}
        self._reaper: asyncio.TimerHandle | None = None
        #: connections opened and streams opened, for the warm-connection ratio
        self.stats = {"connections": 0, "streams": 0}

    async def open(self, host: str, port: int, expected_id: str | None = None) -> Stream:
        """A new stream to the sidecar at ``host:port``.

        :param expected_id: with mTLS, the exact SPIFFE id the callee must present.
        :raises ProxyError: when no connection can be made (``retryable``) or the peer
            fails verification (not retryable).
        """
        key = (host, port, expected_id)
        conn = self._pick(key)
        if conn is None:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = asyncio.ensure_future(self._connect(key))
            conn = await asyncio.shield(pending)
            if conn.closed or conn.draining:
                raise ProxyError(f"the connection to {host}:{port} closed as soon as it opened",
                                 retryable=True)
        self.stats["streams"] += 1
        return conn.open_stream()

    def _pick(self, key: tuple) -> ProxyConnection | None:
        conns = self._pools.get(key)
        if not conns:
            return None
        best = None
        for conn in list(conns):
            if conn.closed or conn.draining:
                conns.remove(conn)
                if conn.draining and not conn.streams:
                    conn.close()
                continue
            if best is None or conn.load < best.load:
                best = conn
        if best is None:
            return None
        if best.load < self.streams_per_conn or len(conns) >= self.max_conns or key in self._pending:
            return best
        return None

    async def _connect(self, key: tuple) -> ProxyConnection:
        try:
            return await self._dial(key)
        finally:
            self._pending.pop(key, None)

    async def _dial(self, key: tuple) -> ProxyConnection:
        host, port, expected_id = key
        loop = asyncio.get_running_loop()
        ctx = self.security.client_context()

        def verify(transport: Any) -> str | None:
            if ctx is None:
                return None
            self.security.verify_callee(transport.get_extra_info("ssl_object"), expected_id)
            return expected_id

        def factory() -> ProxyConnection:
            return ProxyConnection(True, verify, max_frame=self.max_frame)

        kwargs: dict[str, Any] = {}
        if ctx is not None:
            kwargs.update(ssl=ctx, server_hostname="", ssl_handshake_timeout=self.connect_timeout)
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(factory, host, port, **kwargs),
                                             self.connect_timeout)
        except ssl.SSLError as exc:
            raise ProxyError(f"TLS handshake with {host}:{port} failed: {exc.reason or exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            why = "timed out" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
            raise ProxyError(f"cannot connect to {host}:{port}: {why}", retryable=True) from None
        await conn.ready
        self.stats["connections"] += 1
        log.debug("proxy: new connection to %s:%d%s", host, port,
                  f" ({expected_id})" if expected_id else "")
        self._pools.setdefault(key, []).append(conn)
        if self._reaper is None:
            self._reaper = loop.call_later(self.idle_timeout / 2, self._reap)
        return conn

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        live = 0
        for conns in self._pools.values():
            for conn in list(conns):
                if conn.closed or (not conn.streams and now - conn.idle_since > self.idle_timeout):
                    conns.remove(conn)
                    conn.close()
            live += len(conns)
        self._reaper = loop.call_later(self.idle_timeout / 2, self._reap) if live else None

    def refresh(self) -> None:
        """Retire every pooled connection: new requests open new ones, old ones close when done.

        Called after a certificate rotation, so no connection outlives its certificate by long.
        """
        for conns in self._pools.values():
            for conn in conns:
                conn.draining = True
                if not conn.streams:
                    conn.close()
            conns.clear()

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for conns in self._pools.values():
            for conn in conns:
                conn.close()
        self._pools.clear()


def cancel(stream: Stream, reason: str = "caller gave up") -> None:
    """Reset a stream the caller no longer waits for (timeout, cancellation)."""
    if not stream.finished:
        stream.reset(CANCEL, reason)
