"""``configuration.redis``: string keys holding ``value||version``, watched through keyspace events.

Each subscription has its own Pub/Sub connection listening on
``__keyspace@<db>__:<key>`` (a pattern over every key when no key is named).
Redis sends those events only when ``notify-keyspace-events`` asks for them,
so the first subscription turns them on (adding ``K`` and ``A`` to whatever
the server has) and says so in the log; a server that refuses CONFIG SET
(managed Redis) must have them enabled by its operator.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.components._common.redis_settings import RedisClient, RedisSettings
from pydapr.errors import ComponentError
from pydapr.kinds.configuration import (ConfigurationItem, ConfigurationStore, UnknownSubscription,
                                        UpdateHandler)
from pydapr.registry import ComponentType

__all__ = ["RedisConfiguration", "RedisConfigurationMetadata", "split_value"]

log = logging.getLogger("pydapr.configuration.redis")

SEPARATOR = "||"
_SCAN_BATCH = 500


def split_value(raw: str) -> ConfigurationItem:
    """Dapr's stored form: ``value||version`` (no separator: the whole string, no version)."""
    parts = raw.split(SEPARATOR)
    return ConfigurationItem(parts[0], parts[1] if len(parts) > 1 else "")


@dataclass(frozen=True)
class RedisConfigurationMetadata(RedisSettings):
    """Connection fields only."""


class _Watch:
    def __init__(self, pubsub: Any, task: asyncio.Task) -> None:
        self.pubsub, self.task = pubsub, task


class RedisConfiguration(RedisClient, ConfigurationStore):
    metadata_type = RedisConfigurationMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self._db = 0
        self._watches: dict[str, _Watch] = {}
        self._events_checked = False

    async def init(self, metadata: RedisConfigurationMetadata) -> None:
        self._db = metadata.redis_db
        await self._connect(metadata, decode_responses=True)

    async def close(self) -> None:
        for sub_id in list(self._watches):
            await self.unsubscribe(sub_id)
        await super().close()

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigurationItem]:
        try:
            if not keys:
                keys = [k async for k in self._client.scan_iter(count=_SCAN_BATCH, _type="STRING")]
            out: dict[str, ConfigurationItem] = {}
            for start in range(0, len(keys), _SCAN_BATCH):
                batch = keys[start:start + _SCAN_BATCH]
                for key, raw in zip(batch, await self._client.mget(batch)):
                    if raw is not None:
                        out[key] = split_value(raw)
            return out
        except Exception as exc:
            raise ComponentError(f"redis: {exc}") from None

    async def _enable_events(self) -> None:
        if self._events_checked:
            return
        try:
            current = (await self._client.config_get("notify-keyspace-events")).get(
                "notify-keyspace-events", "")
            has_all = "A" in current or set("g$x") <= set(current)
            if "K" not in current or not has_all:
                wanted = "".join(sorted(set(current) | {"K", "A"}))
                await self._client.config_set("notify-keyspace-events", wanted)
                log.info("%s: enabled Redis keyspace notifications (notify-keyspace-events=%s)",
                         self.info.name, wanted)
        except Exception as exc:
            log.warning("%s: cannot check or enable keyspace notifications (%s); changes are seen "
                        "only if notify-keyspace-events includes K and A", self.info.name, exc)
        self._events_checked = True

    async def subscribe(self, sub_id: str, keys: list[str], metadata: dict[str, str],
                        handler: UpdateHandler) -> None:
        await self._enable_events()
        prefix = f"__keyspace@{self._db}__:"
        pubsub = self._client.pubsub()
        try:
            if keys:
                await pubsub.subscribe(*(prefix + k for k in dict.fromkeys(keys)))
                expected = len(dict.fromkeys(keys))
            else:
                await pubsub.psubscribe(prefix + "*")
                expected = 1
            confirmed = 0
            while confirmed < expected:  # the watch is in place once Redis confirmed it
                msg = await pubsub.get_message(timeout=5.0)
                if msg is None:
                    raise ComponentError("redis did not confirm the keyspace subscription")
                if msg["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
        except Exception as exc:
            await pubsub.aclose()
            raise ComponentError(f"redis: {exc}") from None
        task = asyncio.get_running_loop().create_task(self._listen(sub_id, pubsub, prefix, handler))
        self._watches[sub_id] = _Watch(pubsub, task)

    async def _listen(self, sub_id: str, pubsub: Any, prefix: str, handler: UpdateHandler) -> None:
        while True:
            try:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: subscription %s lost its Redis connection: %s", self.info.name,
                            sub_id, exc)
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg["type"] not in ("message", "pmessage"):
                continue
            key = msg["channel"][len(prefix):]
            try:
                raw = await self._client.get(key)
                item = split_value(raw) if raw is not None else ConfigurationItem("")
                await handler({key: item})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: delivering the change of %r failed: %s", self.info.name, key, exc)

    async def unsubscribe(self, sub_id: str) -> None:
        watch = self._watches.pop(sub_id, None)
        if watch is None:
            raise UnknownSubscription(sub_id)
        watch.task.cancel()
        try:
            await watch.task
        except (asyncio.CancelledError, Exception):
            pass
        try:
            await watch.pubsub.aclose()
        except Exception:
            pass


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("configuration.redis", "v1", RedisConfiguration, status="alpha")]
