"""What the HTTP and gRPC faces of the state API share: store lookup, keys, validation, errors.

A store is resolved per request from the runtime's slots and bound once per
component instance (:class:`Bound`: the instance, its name and key prefix),
so a reload that replaces the component is picked up without a restart.
Every request is validated whole before the store sees any of it: a bad
item anywhere means nothing is written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import orjson

from pydapr.errors import APIError, ETagInvalid, ETagMismatch
from pydapr.kinds import Feature
from pydapr.kinds.state import (DeleteRequest, GetRequest, GetResponse, Querier, QueryRequest, QueryResponse, SetRequest,
                                StateOptions, StateStore, TransactionalStateOperation,
                                TransactionalStore, parse_ttl)
from pydapr.kinds.state_query import parse_query

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["Bound", "StateCore", "malformed", "options", "check_ttl", "json_fragment"]

log = logging.getLogger("pydapr.state")

UPSERT, DELETE = "upsert", "delete"


def malformed(message: str, reason: str = "") -> APIError:
    return APIError("ERR_MALFORMED_REQUEST", message, reason=reason)


def options(concurrency: str, consistency: str) -> StateOptions:
    """StateOptions from strings, answering 400 for values Dapr does not know."""
    try:
        return StateOptions(concurrency, consistency)
    except ValueError as exc:
        raise malformed(str(exc)) from None


def check_ttl(metadata: dict[str, str]) -> None:
    try:
        parse_ttl(metadata)
    except ValueError as exc:
        raise malformed(str(exc)) from None


def json_fragment(data: bytes) -> Any:
    """Stored bytes to embed in a JSON response: raw when they are JSON, else as text."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")
    return orjson.Fragment(data)


@dataclass(slots=True)
class Bound:
    """A ready store as the API uses it."""

    name: str
    store: StateStore
    prefix: str

    def key(self, key: str) -> str:
        """The stored key for an API key (``appid||key``)."""
        if not key:
            raise malformed('"key" is a required field')
        if "||" in key:
            raise malformed(f"input key/keyPrefix {key!r} can't contain '||'", "DAPR_STATE_ILLEGAL_KEY")
        return self.prefix + key

    def api_key(self, stored: str) -> str:
        """The key as the app knows it (prefix stripped)."""
        if self.prefix and stored.startswith(self.prefix):
            return stored[len(self.prefix):]
        _, sep, rest = stored.partition("||")
        return rest if sep else stored


class StateCore:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._bound: dict[str, Bound] = {}

    # -- lookup ---------------------------------------------------------------------------

    def store(self, name: str) -> Bound:
        """The named state store, or the API error Dapr answers."""
        slot = self.rt.slots.get(name)
        inst = slot.instance if slot is not None else None
        bound = self._bound.get(name)
        if bound is not None and bound.store is inst:
            return bound
        if isinstance(inst, StateStore):
            bound = self._bound[name] = Bound(name, inst, inst.key_prefix)
            return bound
        meta = {"appID": self.rt.app_id}
        if not self.rt.has_kind("state"):
            raise APIError("ERR_STATE_STORE_NOT_CONFIGURED", "state store is not configured",
                           metadata=meta)
        if slot is not None and slot.resource.kind_name == "state":
            raise APIError("ERR_STATE_STORE_NOT_FOUND",
                           f"state store {name} is not ready ({slot.status.lower()}); see the sidecar log",
                           metadata=meta)
        raise APIError("ERR_STATE_STORE_NOT_FOUND", f"state store {name} is not found", metadata=meta)

    # -- errors ---------------------------------------------------------------------------

    def fail(self, code: str, exc: Exception, what: str, conflict_status: bool = True) -> APIError:
        """Map a store exception to Dapr's error: 409/ABORTED for an ETag mismatch (when
        ``conflict_status``), 400/INVALID_ARGUMENT for an unreadable ETag, else 500."""
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, ETagMismatch):
            msg = f"{what}: possible etag mismatch. error from state store: {exc}"
            if conflict_status:
                return APIError(code, msg, http_status=409, grpc_code="ABORTED")
            return APIError(code, msg)
        if isinstance(exc, ETagInvalid):
            return APIError(code, f"{what}: {exc}", http_status=400, grpc_code="INVALID_ARGUMENT")
        text = str(exc) or type(exc).__name__
        log.warning("%s: %s: %s", what, type(exc).__name__, text)
        return APIError(code, f"{what}: {text}")

    # -- operations shared by HTTP and gRPC ----------------------------------------------------

    async def get(self, b: Bound, req: GetRequest, key: str) -> GetResponse | None:
        try:
            return await b.store.get(req)
        except Exception as exc:
            raise self.fail("ERR_STATE_GET", exc, f"fail to get {key} from state store {b.name}") from None

    async def save(self, b: Bound, reqs: Sequence[SetRequest]) -> None:
        if not reqs:
            return
        try:
            if len(reqs) == 1:
                await b.store.set(reqs[0])
            else:
                await b.store.bulk_set(reqs)
        except Exception as exc:
            raise self.fail("ERR_STATE_SAVE", exc, f"failed saving state in state store {b.name}") from None

    async def delete(self, b: Bound, req: DeleteRequest, code: str = "ERR_STATE_DELETE") -> None:
        try:
            await b.store.delete(req)
        except Exception as exc:
            raise self.fail(code, exc, f"failed deleting state with key {b.api_key(req.key)}") from None

    async def bulk_delete(self, b: Bound, reqs: Sequence[DeleteRequest]) -> None:
        try:
            await b.store.bulk_delete(reqs)
        except Exception as exc:
            raise self.fail("ERR_STATE_BULK_DELETE", exc,
                            f"failed deleting state in state store {b.name}") from None

    async def transaction(self, b: Bound, ops: Sequence[TransactionalStateOperation],
                          metadata: dict[str, str]) -> None:
        store = b.store
        if not isinstance(store, TransactionalStore) or Feature.TRANSACTIONAL not in store.features:
            raise APIError("ERR_STATE_STORE_NOT_SUPPORTED",
                           f"state store {b.name} doesn't support transactions")
        limit = store.max_operations
        if limit and len(ops) > limit:
            raise APIError("ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
                           f"the transaction contains {len(ops)} operations, which is more than what "
                           f"the state store {b.name} supports: {limit}")
        if not ops:
            return
        try:
            await store.multi(ops, metadata)
        except Exception as exc:
            raise self.fail("ERR_STATE_TRANSACTION", exc,
                            "error while executing state transaction", conflict_status=False) from None

    async def query(self, b: Bound, body: Any, metadata: dict[str, str]) -> QueryResponse:
        store = b.store
        if not isinstance(store, Querier) or Feature.QUERY_API not in store.features:
            raise APIError("ERR_STATE_STORE_NOT_SUPPORTED",
                           f"state store {b.name} doesn't support the query API",
                           reason="DAPR_STATE_QUERYING_NOT_SUPPORTED")
        try:
            query = parse_query(body)
        except ValueError as exc:
            raise malformed(f"failed to parse the query: {exc}") from None
        try:
            resp = await store.query(QueryRequest(query, metadata, b.prefix))
        except ValueError as exc:
            raise malformed(f"failed to run the query: {exc}") from None
        except Exception as exc:
            raise self.fail("ERR_STATE_QUERY", exc, f"failed query in state store {b.name}") from None
        for item in resp.results:
            item.key = b.api_key(item.key)
        return resp


def transaction_op(b: Bound, operation: str, key: str, value: bytes, etag: str | None,
                   metadata: dict[str, str], opts: StateOptions,
                   is_json: bool | None) -> TransactionalStateOperation:
    """One validated transaction operation (``upsert`` or ``delete``)."""
    if operation == UPSERT:
        check_ttl(metadata)
        return TransactionalStateOperation(UPSERT, SetRequest(b.key(key), value, etag, metadata, opts,
                                                              is_json))
    if operation == DELETE:
        return TransactionalStateOperation(DELETE, DeleteRequest(b.key(key), etag, metadata, opts))
    raise APIError("ERR_NOT_SUPPORTED_STATE_OPERATION", f"operation type {operation!r} not supported "
                   "(use upsert or delete)")
