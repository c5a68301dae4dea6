"""``state.in-memory``: Dapr's reference store, in the sidecar's memory.

Every operation runs without awaiting anything, so each one (and each
transaction) is atomic on the event loop. Expired keys read as missing and
are swept every ``cleanupInterval``. Queries are evaluated in Python.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.state import (DeleteRequest, GetRequest, GetResponse, Querier, QueryItem,
                                QueryRequest, QueryResponse, SetRequest, StateStore,
                                TransactionalStateOperation, TransactionalStore, check_etag,
                                expire_time, new_etag)
from pydapr.kinds.state_query import matches, order, paginate
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["InMemoryStateStore", "InMemoryMetadata"]


@dataclass(frozen=True)
class InMemoryMetadata:
    cleanup_interval: Duration = meta(Duration(10.0), doc="how often expired keys are removed")
    max_transaction_operations: int = meta(0, doc="largest transaction accepted (0: no limit)")


class _Entry:
    __slots__ = ("value", "etag", "expires")

    def __init__(self, value: bytes, etag: str, expires: float | None) -> None:
        self.value, self.etag, self.expires = value, etag, expires


class InMemoryStateStore(StateStore, TransactionalStore, Querier):
    metadata_type = InMemoryMetadata
    features = frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    async def init(self, metadata: InMemoryMetadata) -> None:
        self.items: dict[str, _Entry] = {}
        self.max_operations = metadata.max_transaction_operations
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(metadata.cleanup_interval))

    async def close(self) -> None:
        self._sweeper.cancel()
        self.items.clear()

    async def _sweep(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            now = time.time()
            for key in [k for k, e in self.items.items() if e.expires is not None and e.expires <= now]:
                del self.items[key]

    def _live(self, key: str) -> _Entry | None:
        entry = self.items.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= time.time():
            del self.items[key]
            return None
        return entry

    async def get(self, req: GetRequest) -> GetResponse | None:
        entry = self._live(req.key)
        if entry is None:
            return None
        if entry.expires is None:
            return GetResponse(entry.value, entry.etag)
        return GetResponse(entry.value, entry.etag, {"ttlExpireTime": expire_time(entry.expires)})

    def _check_set(self, req: SetRequest) -> _Entry:
        entry = self._live(req.key)
        check_etag(entry.etag if entry else None, req.etag, req.options.first_write)
        ttl = req.ttl()
        return _Entry(req.value, new_etag(), time.time() + ttl if ttl else None)

    def _check_delete(self, req: DeleteRequest) -> None:
        entry = self._live(req.key)
        check_etag(entry.etag if entry else None, req.etag)

    async def set(self, req: SetRequest) -> None:
        self.items[req.key] = self._check_set(req)

    async def delete(self, req: DeleteRequest) -> None:
        self._check_delete(req)
        self.items.pop(req.key, None)

    async def multi(self, operations: Sequence[TransactionalStateOperation],
                    metadata: dict[str, str]) -> None:
        # check every operation against the state as the earlier ones leave it, then apply
        saved = {op.request.key: self.items.get(op.request.key) for op in operations}
        try:
            for op in operations:
                if isinstance(op.request, SetRequest):
                    self.items[op.request.key] = self._check_set(op.request)
                else:
                    self._check_delete(op.request)
                    self.items.pop(op.request.key, None)
        except BaseException:
            for key, entry in saved.items():
                if entry is None:
                    self.items.pop(key, None)
                else:
                    self.items[key] = entry
            raise

    async def query(self, req: QueryRequest) -> QueryResponse:
        rows: list[tuple[str, Any, QueryItem]] = []
        for key in list(self.items):
            entry = self._live(key)
            if entry is None or not key.startswith(req.key_prefix):
                continue
            try:
                doc = orjson.loads(entry.value)
            except orjson.JSONDecodeError:
                continue
            if matches(req.query.filter, doc):
                rows.append((key, doc, QueryItem(key, entry.value, entry.etag)))
        page, token = paginate(order(rows, req.query.sort), req.query)
        return QueryResponse(page, token)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("state.in-memory", "v1", InMemoryStateStore)]
