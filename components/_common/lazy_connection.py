"""A protocol connection opened on first use, and again after it fails.

The lean broker clients (``resp``, ``amqp``) share this: callers that arrive
while a connect is under way wait for that one connect instead of opening
their own.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_mod
from typing import Any, Callable, Generic, TypeVar

__all__ = ["LazyConnection", "dial"]

P = TypeVar("P", bound=asyncio.Protocol)


async def dial(factory: Callable[[], P], host: str, port: int, timeout: float, server: str,
               ssl: ssl_mod.SSLContext | None = None) -> P:
    """Connect ``factory()``'s protocol; a refusal or timeout is a :class:`ConnectionError`."""
    loop = asyncio.get_running_loop()
    try:
        _, proto = await asyncio.wait_for(
            loop.create_connection(factory, host, port, ssl=ssl), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionError(f"cannot connect to {server} at {host}:{port}: "
                              f"{getattr(exc, 'strerror', None) or exc or 'timed out'}") from None
    return proto


class LazyConnection(Generic[P]):
    """Holds ``conn`` (a protocol with a ``closed`` flag); subclasses say how to ``_open`` one."""

    conn: Any = None
    _opening: asyncio.Future | None = None

    async def _open(self) -> P:
        raise NotImplementedError

    async def _connection(self) -> P:
        conn = self.conn
        if conn is not None and not conn.closed:
            return conn
        if self._opening is None:  # one connect for every caller waiting on it
            self._opening = asyncio.ensure_future(self._open())
        try:
            self.conn = await asyncio.shield(self._opening)
        finally:
            self._opening = None
        return self.conn
