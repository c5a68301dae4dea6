"""The ``lock`` kind: a named lock held by one owner until it is released or expires.

Expiry is part of the contract, not an option: a holder that dies must not
keep a resource locked forever, so every lock is taken with a lifetime.
Release checks the owner atomically (a compare-and-delete), so one owner can
never release another's lock, even after its own expired and someone else
took the resource.
"""
from __future__ import annotations

import abc
from enum import IntEnum

from . import Component

__all__ = ["LockStore", "UnlockStatus"]


class UnlockStatus(IntEnum):
    """Dapr's ``UnlockResponse.Status`` values (the HTTP API sends the number)."""

    SUCCESS = 0
    LOCK_DOES_NOT_EXIST = 1
    LOCK_BELONGS_TO_OTHERS = 2
    INTERNAL_ERROR = 3


class LockStore(Component):
    """A distributed lock store.

    ``resource_id`` reaches the component already prefixed by the building
    block (``appid||resource`` by default, the component's ``keyPrefix``).
    """

    @abc.abstractmethod
    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        """Take the lock when it is free (or expired); False when someone holds it.

        Taking a lock the same owner already holds answers False too (Dapr: SET NX).
        """

    @abc.abstractmethod
    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        """Release the lock if ``owner`` holds it; never touches a lock held by another owner."""
