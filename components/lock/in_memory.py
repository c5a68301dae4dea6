"""``lock.in-memory``: locks held in the sidecar's memory (one sidecar, tests and development).

Operations run on the event loop without awaiting, so each one is atomic.
Expired entries are dropped lazily, when touched, and in a sweep when the
table grows, so a flood of short locks cannot grow memory without bound.
"""
from __future__ import annotations

import time
from typing import Any

from pydapr import hookimpl
from pydapr.kinds.lock import LockStore, UnlockStatus
from pydapr.registry import ComponentType

__all__ = ["InMemoryLock"]

_SWEEP_AT = 1024


class InMemoryLock(LockStore):
    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self._held: dict[str, tuple[str, float]] = {}  # resource -> (owner, monotonic deadline)
        self._sweep_at = _SWEEP_AT

    async def init(self, metadata: Any) -> None:
        self._held.clear()

    def _current(self, resource_id: str, now: float) -> str | None:
        entry = self._held.get(resource_id)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._held[resource_id]
            return None
        return entry[0]

    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        now = time.monotonic()
        if self._current(resource_id, now) is not None:
            return False
        if len(self._held) >= self._sweep_at:
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
            self._sweep_at = max(_SWEEP_AT, 2 * len(self._held))
        self._held[resource_id] = (owner, now + expiry_seconds)
        return True

    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        holder = self._current(resource_id, time.monotonic())
        if holder is None:
            return UnlockStatus.LOCK_DOES_NOT_EXIST
        if holder != owner:
            return UnlockStatus.LOCK_BELONGS_TO_OTHERS
        del self._held[resource_id]
        return UnlockStatus.SUCCESS


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("lock.in-memory", "v1", InMemoryLock, status="alpha")]
