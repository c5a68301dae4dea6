"""``lock.redis``: ``SET key owner NX PX`` to lock, a Lua compare-and-delete to unlock.

The compare and the delete run inside Redis as one script, so an owner whose
lock expired can never delete the lock someone else took since.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.components._common.redis_settings import RedisClient, RedisSettings
from pydapr.errors import ComponentError
from pydapr.kinds.lock import LockStore, UnlockStatus
from pydapr.registry import ComponentType

__all__ = ["RedisLock", "RedisLockMetadata"]

# -1: no such lock, -2: held by another owner, otherwise the number of keys deleted
_UNLOCK = """
local v = redis.call('get', KEYS[1])
if v == false then return -1 end
if v ~= ARGV[1] then return -2 end
return redis.call('del', KEYS[1])
"""


@dataclass(frozen=True)
class RedisLockMetadata(RedisSettings):
    """Connection fields only; the key prefix (``keyPrefix``) is applied by the building block."""


class RedisLock(RedisClient, LockStore):
    metadata_type = RedisLockMetadata

    _unlock: Any = None

    async def init(self, metadata: RedisLockMetadata) -> None:
        self._unlock = (await self._connect(metadata)).register_script(_UNLOCK)

    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        try:
            done = await self._client.set(resource_id, owner, nx=True,
                                          px=int(expiry_seconds * 1000))
        except Exception as exc:
            raise ComponentError(f"redis: {exc}") from None
        return bool(done)

    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        try:
            result = int(await self._unlock(keys=[resource_id], args=[owner]))
        except Exception as exc:
            raise ComponentError(f"redis: {exc}") from None
        if result == -1:
            return UnlockStatus.LOCK_DOES_NOT_EXIST
        if result == -2:
            return UnlockStatus.LOCK_BELONGS_TO_OTHERS
        return UnlockStatus.SUCCESS if result > 0 else UnlockStatus.LOCK_DOES_NOT_EXIST


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("lock.redis", "v1", RedisLock, status="alpha")]
