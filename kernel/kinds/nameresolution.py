"""The ``nameresolution`` kind: app id -> address of its sidecar's internal port."""
from __future__ import annotations

import abc
from dataclasses import dataclass

from . import Component

__all__ = ["Registration", "NameResolver"]


@dataclass(frozen=True)
class Registration:
    app_id: str
    namespace: str
    host: str
    port: int


class NameResolver(Component):
    @abc.abstractmethod
    async def register(self, me: Registration) -> None:
        """Announce this sidecar; called at start-up."""

    @abc.abstractmethod
    async def resolve(self, app_id: str, namespace: str) -> tuple[str, int]:
        """Return ``(host, port)`` of the app's sidecar; raise ``LookupError`` when unknown."""
