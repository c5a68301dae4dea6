"""``bindings.redis``: ``create`` (SET, optional ``ttlInSeconds``), ``get`` and ``delete`` one key.

The key is request metadata ``key``. Data is stored as the bytes received,
so over HTTP a JSON string keeps its quotes, as in Dapr.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydapr import hookimpl
from pydapr.components._common.redis_settings import RedisClient, RedisSettings
from pydapr.errors import ComponentError
from pydapr.kinds.bindings import InvokeRequest, InvokeResponse, OutputBinding, metadata_value
from pydapr.registry import ComponentType

__all__ = ["RedisBinding", "RedisBindingMetadata"]


@dataclass(frozen=True)
class RedisBindingMetadata(RedisSettings):
    """Connection fields only."""


class RedisBinding(RedisClient, OutputBinding):
    metadata_type = RedisBindingMetadata

    async def init(self, metadata: RedisBindingMetadata) -> None:
        await self._connect(metadata)

    def operations(self) -> list[str]:
        return ["create", "get", "delete"]

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        key = metadata_value(request.metadata, "key")
        if not key:
            raise ComponentError("metadata key is required")
        ttl_text = metadata_value(request.metadata, "ttlInSeconds")
        ttl = None
        if ttl_text:
            try:
                ttl = int(ttl_text)
            except ValueError:
                raise ComponentError(f"ttlInSeconds {ttl_text!r} is not a whole number") from None
            if ttl <= 0:
                raise ComponentError("ttlInSeconds must be positive")
        try:
            if request.operation == "create":
                await self._client.set(key, request.data, ex=ttl)
                return None
            if request.operation == "get":
                value = await self._client.get(key)
                return InvokeResponse(value or b"")
            await self._client.delete(key)
            return None
        except Exception as exc:
            raise ComponentError(f"redis: {exc}") from None


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.redis", "v1", RedisBinding)]
