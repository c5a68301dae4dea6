"""The ``configuration`` kind: read versioned key/values and watch them change.

A subscription belongs to the component that serves it: the component turns
its backend's change feed (Redis keyspace notifications, PostgreSQL
LISTEN/NOTIFY) into calls of the handler, and stops when unsubscribed. The
building block keeps the ids, the delivery to the app and the gRPC streams.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from . import Component

__all__ = ["ConfigurationStore", "ConfigurationItem", "UpdateHandler", "UnknownSubscription"]


@dataclass(slots=True)
class ConfigurationItem:
    value: str
    version: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "version": self.version, "metadata": self.metadata}


#: called by the component with the changed items (key -> item) of one subscription
UpdateHandler = Callable[[dict[str, ConfigurationItem]], Awaitable[None]]


class UnknownSubscription(KeyError):
    """``unsubscribe`` was given an id this store does not know."""


class ConfigurationStore(Component):
    """A configuration store."""

    @abc.abstractmethod
    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigurationItem]:
        """The items for ``keys`` (missing keys are left out); no keys means every key."""

    @abc.abstractmethod
    async def subscribe(self, sub_id: str, keys: list[str], metadata: dict[str, str],
                        handler: UpdateHandler) -> None:
        """Start calling ``handler`` with changes of ``keys`` (no keys: every key).

        Returns once the watch is in place, so a change made after it returns is seen.
        A deleted key is reported with an empty value and version.
        """

    @abc.abstractmethod
    async def unsubscribe(self, sub_id: str) -> None:
        """Stop the subscription. :raises UnknownSubscription: for an id it does not hold."""
