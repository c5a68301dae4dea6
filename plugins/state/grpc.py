"""The state API over gRPC (spec 2.11): values are raw bytes, stored as sent.

A missing key answers an empty ``GetStateResponse`` (no error); an ETag
mismatch is ``ABORTED``; the ``StateOptions`` enums map to Dapr's strings.
"""
from __future__ import annotations

import functools

from typing import Any

import orjson

from pydapr.kinds.state import (EVENTUAL, FIRST_WRITE, LAST_WRITE, STRONG, DeleteRequest,
                                GetRequest, SetRequest, StateOptions)

from .core import Bound, StateCore, check_ttl, malformed, transaction_op

__all__ = ["StateGRPC"]

_CONCURRENCY = {0: "", 1: FIRST_WRITE, 2: LAST_WRITE}
_CONSISTENCY = {0: "", 1: EVENTUAL, 2: STRONG}


def _options(item: Any) -> StateOptions:
    if not item.HasField("options"):
        return StateOptions()
    o = item.options
    try:
        return StateOptions(_CONCURRENCY[o.concurrency], _CONSISTENCY[o.consistency])
    except KeyError:
        raise malformed(f"unknown state options {o.concurrency}/{o.consistency}") from None


def _etag(item: Any) -> str | None:
    return (item.etag.value or None) if item.HasField("etag") else None


def _set(b: Bound, item: Any) -> SetRequest:
    md = dict(item.metadata)
    check_ttl(md)
    return SetRequest(b.key(item.key), item.value, _etag(item), md, _options(item))


class StateGRPC:
    def __init__(self, core: StateCore) -> None:
        self.core = core

    # the SDK's protos load with the first gRPC call (see pydapr.server.grpc)
    @functools.cached_property
    def pb(self) -> Any:
        from dapr.proto.runtime.v1 import state_pb2
        return state_pb2

    @functools.cached_property
    def empty(self) -> Any:
        from google.protobuf import empty_pb2
        return empty_pb2.Empty

    def methods(self) -> dict[str, Any]:
        return {"GetState": self.get_state, "GetBulkState": self.get_bulk_state,
                "SaveState": self.save_state, "DeleteState": self.delete_state,
                "DeleteBulkState": self.delete_bulk_state,
                "ExecuteStateTransaction": self.execute_state_transaction,
                "QueryStateAlpha1": self.query_state}

    async def get_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        r = GetRequest(b.key(request.key), dict(request.metadata), _CONSISTENCY.get(request.consistency, ""))
        found = await self.core.get(b, r, request.key)
        if found is None:
            return self.pb.GetStateResponse()
        return self.pb.GetStateResponse(data=found.data, etag=found.etag or "", metadata=found.metadata)

    async def get_bulk_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        md = dict(request.metadata)
        keys = list(request.keys)
        gets = [GetRequest(b.key(k), md) for k in keys]
        resp = self.pb.GetBulkStateResponse()
        if not gets:
            return resp
        try:
            items = await b.store.bulk_get(gets, request.parallelism)
        except Exception as exc:
            raise self.core.fail("ERR_STATE_BULK_GET", exc,
                                 f"failed getting state in state store {b.name}") from None
        for key, it in zip(keys, items):
            resp.items.add(key=key, data=it.data or b"", etag=it.etag or "", error=it.error,
                           metadata=it.metadata)
        return resp

    async def save_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        await self.core.save(b, [_set(b, s) for s in request.states])
        return self.empty()

    async def delete_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        await self.core.delete(b, DeleteRequest(b.key(request.key), _etag(request),
                                                dict(request.metadata), _options(request)))
        return self.empty()

    async def delete_bulk_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        reqs = [DeleteRequest(b.key(s.key), _etag(s), dict(s.metadata), _options(s))
                for s in request.states]
        if reqs:
            await self.core.bulk_delete(b, reqs)
        return self.empty()

    async def execute_state_transaction(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.storeName)
        ops = []
        for op in request.operations:
            item = op.request
            ops.append(transaction_op(b, op.operationType, item.key, item.value, _etag(item),
                                      dict(item.metadata), _options(item), None))
        await self.core.transaction(b, ops, dict(request.metadata))
        return self.empty()

    async def query_state(self, request: Any, context: Any) -> Any:
        b = self.core.store(request.store_name)
        try:
            body = orjson.loads(request.query)
        except orjson.JSONDecodeError as exc:
            raise malformed(f"failed to parse the query: not valid JSON: {exc}") from None
        resp = await self.core.query(b, body, dict(request.metadata))
        out = self.pb.QueryStateResponse(token=resp.token, metadata=resp.metadata)
        for it in resp.results:
            out.results.add(key=it.key, data=it.data, etag=it.etag or "", error=it.error)
        return out
