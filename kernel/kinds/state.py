"""The ``state`` kind: Dapr's state-store contract (requests, responses, interfaces).

The shapes follow components-contrib's ``state`` package so a store written
against Dapr's Go interface maps one to one. Keys reaching a store are
already prefixed (``appid||key``); values are bytes, with ``is_json`` telling
whether the API received JSON (``None``: unknown, the store may check with
:func:`is_json`). ETags are decimal integers chosen at random on every write
(:func:`new_etag`), so a key deleted and written again never gets an ETag
an old reader still holds.

Optional capabilities are separate interfaces checked with ``isinstance``:
:class:`TransactionalStore` (``multi``) and :class:`Querier` (``query``); a
store declares them in ``features`` as well (``TRANSACTIONAL``, ``QUERY_API``).
"""
from __future__ import annotations

import abc
import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import orjson

from ..errors import ConfigError, ETagInvalid, ETagMismatch
from . import Component, ComponentInfo, Feature
from .state_query import Query

__all__ = [
    "FIRST_WRITE", "LAST_WRITE", "STRONG", "EVENTUAL", "StateOptions", "GetRequest", "GetResponse",
    "BulkGetItem", "SetRequest", "DeleteRequest", "TransactionalStateOperation", "QueryRequest",
    "QueryItem", "QueryResponse", "StateStore", "TransactionalStore", "Querier", "new_etag",
    "parse_etag", "check_etag", "parse_ttl", "is_json", "expire_time", "key_prefix", "actor_state_key",
    "find_actor_store",
]

FIRST_WRITE, LAST_WRITE = "first-write", "last-write"
STRONG, EVENTUAL = "strong", "eventual"
TTL_KEY = "ttlInSeconds"


@dataclass(frozen=True, slots=True)
class StateOptions:
    """``concurrency`` (``first-write``/``last-write``, default last-write) and
    ``consistency`` (``strong``/``eventual``, a hint). Empty means unspecified."""

    concurrency: str = ""
    consistency: str = ""

    def __post_init__(self) -> None:
        if self.concurrency not in ("", FIRST_WRITE, LAST_WRITE):
            raise ValueError(f"unrecognized concurrency model {self.concurrency!r} "
                             f"(use {FIRST_WRITE!r} or {LAST_WRITE!r})")
        if self.consistency not in ("", STRONG, EVENTUAL):
            raise ValueError(f"unrecognized consistency model {self.consistency!r} "
                             f"(use {STRONG!r} or {EVENTUAL!r})")

    @property
    def first_write(self) -> bool:
        return self.concurrency == FIRST_WRITE


_NO_OPTIONS = StateOptions()


@dataclass(slots=True)
class GetRequest:
    key: str
    metadata: dict[str, str] = field(default_factory=dict)
    consistency: str = ""


@dataclass(slots=True)
class GetResponse:
    """A value found. ``metadata`` carries ``ttlExpireTime`` when the key expires."""

    data: bytes
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BulkGetItem:
    """One key of a bulk get: ``data`` None when missing, ``error`` set when that key failed."""

    key: str
    data: bytes | None = None
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(slots=True)
class SetRequest:
    key: str
    value: bytes
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    options: StateOptions = _NO_OPTIONS
    is_json: bool | None = None

    def ttl(self) -> int | None:
        """Seconds to live from ``metadata.ttlInSeconds``; None for no expiry (absent or <= 0)."""
        return parse_ttl(self.metadata)


@dataclass(slots=True)
class DeleteRequest:
    key: str
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    options: StateOptions = _NO_OPTIONS


@dataclass(slots=True)
class TransactionalStateOperation:
    """``operation`` is ``upsert`` (with a SetRequest) or ``delete`` (with a DeleteRequest)."""

    operation: str
    request: SetRequest | DeleteRequest


@dataclass(slots=True)
class QueryRequest:
    """A parsed query. Only keys starting with ``key_prefix`` may be returned (this app's keys)."""

    query: Query
    metadata: dict[str, str] = field(default_factory=dict)
    key_prefix: str = ""


@dataclass(slots=True)
class QueryItem:
    key: str
    data: bytes
    etag: str | None = None
    error: str = ""


@dataclass(slots=True)
class QueryResponse:
    results: list[QueryItem]
    token: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def new_etag() -> str:
    """A fresh ETag: a random positive 63-bit decimal integer."""
    return str(secrets.randbits(63) | 1)


def parse_etag(etag: str) -> int:
    """The integer an ETag stands for.

    :raises ETagInvalid: when it is not a decimal integer (answered 400 / INVALID_ARGUMENT).
    """
    try:
        return int(etag)
    except (TypeError, ValueError):
        raise ETagInvalid(f"invalid etag value {etag!r}: not one this store issued") from None


def check_etag(current: str | None, etag: str | None, first_write: bool = False) -> None:
    """The concurrency rule every store applies before a write (spec 2.8).

    :param current: the stored ETag, None when the key is missing or expired.
    :param etag: the ETag the request carries, if any.
    :param first_write: ``first-write`` concurrency (no ETag: the key must not exist).
    :raises ETagInvalid: for an ETag that is not a decimal integer.
    :raises ETagMismatch: when the check fails.
    """
    if etag is not None:
        parse_etag(etag)
        if current != etag:
            raise ETagMismatch("the etag does not match the stored one" if current is not None
                               else "the etag was given but the key does not exist")
    elif first_write and current is not None:
        raise ETagMismatch("first-write: the key already exists and no etag was given")


def parse_ttl(metadata: dict[str, str]) -> int | None:
    """``ttlInSeconds`` as an int; None when absent or <= 0 (no expiry).

    :raises ValueError: when the value is not an integer.
    """
    raw = metadata.get(TTL_KEY)
    if raw is None or raw == "":
        return None
    try:
        ttl = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"metadata {TTL_KEY} must be an integer number of seconds, got {raw!r}") from None
    return ttl if ttl > 0 else None


def is_json(req: SetRequest) -> bool:
    """Whether the value is JSON (trusting ``req.is_json`` when the API knows)."""
    if req.is_json is not None:
        return req.is_json
    try:
        orjson.loads(req.value)
    except orjson.JSONDecodeError:
        return False
    return True


def expire_time(epoch: float) -> str:
    """RFC 3339 UTC text for ``metadata.ttlExpireTime`` (what Dapr's stores return)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def key_prefix(info: ComponentInfo) -> str:
    """The prefix the API puts before every key of this store (``"myapp||"``, or ``""``).

    Component metadata ``keyPrefix`` (name matched case-insensitively): ``appid`` (default),
    ``name``, ``namespace`` (``<NAMESPACE>.<appid>``, falling back to the app id when the
    ``NAMESPACE`` variable is empty), ``none``, or any other string used as is.

    :raises ConfigError: when the prefix contains ``||``.
    """
    strategy = next((v for k, v in info.properties.items() if k.lower() == "keyprefix"), "") or "appid"
    low = strategy.lower()
    if low == "appid":
        prefix = info.app_id
    elif low == "name":
        prefix = info.name
    elif low == "namespace":
        ns = os.environ.get("NAMESPACE", "")
        prefix = f"{ns}.{info.app_id}" if ns and info.app_id else info.app_id
    elif low == "none":
        prefix = ""
    else:
        prefix = strategy
    if "||" in prefix:
        raise ConfigError(f"component {info.name}: keyPrefix {prefix!r} can't contain '||'")
    return f"{prefix}||" if prefix else ""


def actor_state_key(app_id: str, actor_type: str, actor_id: str, key: str) -> str:
    """Key of one actor's state entry in the actor state store (no keyPrefix applies)."""
    return f"{app_id}||{actor_type}||{actor_id}||{key}"


def find_actor_store(stores: dict[str, Any]) -> tuple[str, StateStore] | None:
    """The store flagged ``actorStateStore: "true"`` among ``runtime.components_of("state")``."""
    for name, store in stores.items():
        if isinstance(store, StateStore) and store.actor_state_store:
            return name, store
    return None


# --------------------------------------------------------------------------- interfaces


class StateStore(Component):
    """A key/value store with ETags. Keys arrive prefixed; values are bytes.

    ``get`` returns None for a missing (or expired) key. ``set`` and ``delete``
    raise :class:`~pydapr.errors.ETagMismatch` when the ETag (or first-write)
    check fails and :class:`~pydapr.errors.ETagInvalid` for an ETag the store
    cannot read; any other exception means the store failed.

    Subclasses that override ``__init__`` must call ``super().__init__(info)``:
    it reads ``keyPrefix`` and ``actorStateStore`` from the component metadata.
    """

    features: ClassVar[frozenset[Feature]] = frozenset({Feature.ETAG})

    def __init__(self, info: ComponentInfo) -> None:
        super().__init__(info)
        self.key_prefix = key_prefix(info)
        flag = next((v for k, v in info.properties.items() if k.lower() == "actorstatestore"), "")
        self.actor_state_store = flag.strip().lower() == "true"
        if self.actor_state_store:
            missing = {Feature.ETAG, Feature.TRANSACTIONAL} - set(self.features)
            if missing or not isinstance(self, TransactionalStore):
                raise ConfigError(f"component {info.name}: actorStateStore needs a store with "
                                  "ETAG and TRANSACTIONAL support")
            self.features = frozenset({*self.features, Feature.ACTOR})  # type: ignore[misc]

    @abc.abstractmethod
    async def get(self, req: GetRequest) -> GetResponse | None:
        """The value, its ETag and metadata; None when the key does not exist."""

    @abc.abstractmethod
    async def set(self, req: SetRequest) -> None:
        """Write one value (honouring ``etag``, ``options.concurrency`` and ``ttlInSeconds``)."""

    @abc.abstractmethod
    async def delete(self, req: DeleteRequest) -> None:
        """Delete one key; deleting a missing key without an ETag succeeds."""

    async def bulk_get(self, reqs: Sequence[GetRequest], parallelism: int = 0) -> list[BulkGetItem]:
        """Every key, in order; a failing key carries ``error``. Default: ``get`` with at most
        ``parallelism`` (0: all) in flight."""
        sem = asyncio.Semaphore(parallelism if parallelism > 0 else max(len(reqs), 1))

        async def one(r: GetRequest) -> BulkGetItem:
            async with sem:
                try:
                    resp = await self.get(r)
                except Exception as exc:
                    return BulkGetItem(r.key, error=str(exc) or type(exc).__name__)
            if resp is None:
                return BulkGetItem(r.key)
            return BulkGetItem(r.key, resp.data, resp.etag, resp.metadata)
        return list(await asyncio.gather(*(one(r) for r in reqs)))

    async def bulk_set(self, reqs: Sequence[SetRequest]) -> None:
        """Write several values, one after the other (not atomic: use ``multi`` for that)."""
        for r in reqs:
            await self.set(r)

    async def bulk_delete(self, reqs: Sequence[DeleteRequest]) -> None:
        for r in reqs:
            await self.delete(r)


class TransactionalStore(abc.ABC):
    """Atomic multi-key writes: every operation applies or none does.

    ``max_operations`` (0: no limit) is the largest transaction the store takes.
    """

    max_operations: int = 0

    @abc.abstractmethod
    async def multi(self, operations: Sequence[TransactionalStateOperation],
                    metadata: dict[str, str]) -> None:
        """Apply all operations atomically; raise (ETagMismatch...) and write nothing on failure."""


class Querier(abc.ABC):
    """The state query API (alpha) over JSON values."""

    @abc.abstractmethod
    async def query(self, req: QueryRequest) -> QueryResponse:
        """Results of ``req.query`` among keys starting with ``req.key_prefix`` (keys as stored)."""
