"""The ``secretstores`` kind."""
from __future__ import annotations

import abc

from . import Component

__all__ = ["SecretStore"]


class SecretStore(Component):
    """Read-only access to secrets: one secret is a mapping of key to value."""

    @abc.abstractmethod
    async def get_secret(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        """Return the secret's key/value pairs; raise ``KeyError`` when it does not exist."""

    @abc.abstractmethod
    async def bulk_get_secret(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        """Return every secret this store holds, by name."""
