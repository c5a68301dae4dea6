"""Lock keys are prefixed as Dapr does; the in-memory store keeps owner and expiry rules."""
from __future__ import annotations

import pytest

from pydapr.components.lock.in_memory import InMemoryLock
from pydapr.errors import APIError
from pydapr.kinds import ComponentInfo
from pydapr.kinds.lock import UnlockStatus
from pydapr.plugins.lock import lock_key


@pytest.mark.parametrize("strategy, expected", [
    ("appid", "lock||app1||res"), ("", "lock||app1||res"), ("name", "lock||store||res"),
    ("none", "res"), ("NONE", "res"), ("shared", "lock||shared||res"),
])
def test_key_prefix_strategies(strategy, expected):
    assert lock_key("res", "store", "app1", strategy) == expected


def test_separator_in_resource_is_refused():
    with pytest.raises(APIError) as info:
        lock_key("a||b", "store", "app1", "appid")
    assert info.value.code == "ERR_MALFORMED_REQUEST"


async def test_in_memory_lock_expiry_and_sweep(monkeypatch):
    import pydapr.components.lock.in_memory as mod
    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    store = InMemoryLock(ComponentInfo("m", "lock.in-memory"))
    await store.init({})
    assert await store.try_lock("r", "a", 10)
    assert not await store.try_lock("r", "a", 10)  # held, even by the same owner (SET NX)
    now[0] += 10
    assert await store.unlock("r", "a") == UnlockStatus.LOCK_DOES_NOT_EXIST  # expired
    assert await store.try_lock("r", "b", 10)
    assert await store.unlock("r", "a") == UnlockStatus.LOCK_BELONGS_TO_OTHERS
    for i in range(mod._SWEEP_AT + 10):
        assert await store.try_lock(f"k{i}", "o", 1)
        now[0] += 0.01
    assert len(store._held) < mod._SWEEP_AT  # expired entries were swept, not kept forever
