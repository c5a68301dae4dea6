"""Connection settings shared by the Redis-backed components (lock, configuration, bindings).

Dapr's Redis components read the same connection fields (``redisHost``,
``redisPassword``, ``redisDB``, ``enableTLS``...); declaring them once keeps
their names and defaults identical across kinds. The client library is
imported only when a connection is made.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydapr.metadata import Duration, meta

__all__ = ["RedisSettings", "connect", "host_port", "RedisClient"]


@dataclass(frozen=True)
class RedisSettings:
    redis_host: str = meta("localhost:6379", doc="host:port of the Redis server")
    redis_username: str = meta("", doc="ACL user name")
    redis_password: str = meta("", sensitive=True, doc="password (or ACL password)")
    redis_db: int = meta(0, name="redisDB", doc="database number")
    enable_tls: bool = meta(False, name="enableTLS", doc="connect with TLS (server verified)")
    dial_timeout: Duration = meta(Duration(5.0), doc="connect timeout")
    read_timeout: Duration = meta(Duration(5.0), doc="timeout of one command")


def host_port(settings: RedisSettings) -> tuple[str, int]:
    """``redisHost`` split into host and port (6379 when none is given)."""
    host, _, port = settings.redis_host.rpartition(":")
    if not host:
        host, port = settings.redis_host, "6379"
    return host.strip("[]"), int(port)


def connect(settings: RedisSettings, **extra: Any) -> Any:
    """A ``redis.asyncio.Redis`` client for ``settings`` (the connection opens on first use)."""
    from redis import asyncio as aioredis
    host, port = host_port(settings)
    return aioredis.Redis(host=host, port=port, db=settings.redis_db,
                          username=settings.redis_username or None,
                          password=settings.redis_password or None, ssl=settings.enable_tls,
                          socket_connect_timeout=settings.dial_timeout,
                          socket_timeout=settings.read_timeout, **extra)



class RedisClient:
    """Mixin for components holding one client: connect (and ping) in init, close, ping."""

    _client: Any = None

    async def _connect(self, settings: RedisSettings, **extra: Any) -> Any:
        self._client = connect(settings, **extra)
        await self._client.ping()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def ping(self) -> None:
        await self._client.ping()
