"""``state.redis``: Redis through redis-py asyncio, with Dapr's data layout.

Gets and writes run their scripts over a lean pipelined connection
(:mod:`.._common.resp`); loading scripts, pings and queries are redis-py's. Each
key is a hash with fields ``data`` (the value bytes) and ``version`` (the ETag),
so data written by daprd reads back here. Every check-and-write runs as one Lua
script, which Redis executes atomically: the ETag or
first-write check and the write cannot interleave with another client, and a
transaction checks all its operations before it applies any. TTLs are Redis
key expirations (``EXPIRE``/``PERSIST``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from pydapr import hookimpl
from pydapr.components._common.redis_settings import RedisSettings, connect
from pydapr.errors import ETagMismatch
from pydapr.kinds import Feature
from pydapr.kinds.state import (BulkGetItem, DeleteRequest, GetRequest, GetResponse, SetRequest,
                                StateStore, TransactionalStateOperation, TransactionalStore,
                                expire_time, new_etag, parse_etag)
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

from .._common.resp import ReplyError, lean_connection

__all__ = ["RedisStateStore", "RedisStateMetadata"]

# KEYS: the keys. Returns, per key, {data, version, pttl} or false when missing.
_GET = """
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call("HMGET", k, "data", "version")
  if v[1] then out[i] = {v[1], v[2] or "", redis.call("PTTL", k)} else out[i] = false end
end
return out
"""

# One operation per key. ARGV per op (6): kind (u|d), value, etag ("" none), first-write (1|0),
# new version, ttl seconds (0: none). Returns 0 when applied, else the 1-based failing op.
_MULTI = """
local ver = {}
for i, k in ipairs(KEYS) do
  local b = (i - 1) * 6
  local cur = ver[k]
  if cur == nil then cur = redis.call("HGET", k, "version") end
  local etag = ARGV[b + 3]
  if etag ~= "" then
    if cur ~= etag then return i end
  elseif ARGV[b + 1] == "u" and ARGV[b + 4] == "1" and cur then
    return i
  end
  if ARGV[b + 1] == "u" then ver[k] = ARGV[b + 5] else ver[k] = false end
end
for i, k in ipairs(KEYS) do
  local b = (i - 1) * 6
  if ARGV[b + 1] == "u" then
    redis.call("HSET", k, "data", ARGV[b + 2], "version", ARGV[b + 5])
    local ttl = tonumber(ARGV[b + 6])
    if ttl > 0 then redis.call("EXPIRE", k, ttl) else redis.call("PERSIST", k) end
  else
    redis.call("DEL", k)
  end
end
return 0
"""


@dataclass(frozen=True)
class RedisStateMetadata(RedisSettings):
    max_retries: int = meta(3, doc="retries of a command that failed to reach the server")
    max_retry_backoff: Duration = meta(Duration(0.512), doc="longest wait between retries")
    pool_size: int = meta(64, doc="largest number of connections for writes")
    pool_timeout: Duration = meta(Duration(4.0), doc="how long a write waits for a free connection")
    max_transaction_operations: int = meta(0, doc="largest transaction accepted (0: no limit)")


def _op_args(op: SetRequest | DeleteRequest) -> list[Any]:
    if op.etag is not None:
        parse_etag(op.etag)
    if isinstance(op, SetRequest):
        return ["u", op.value, op.etag or "", "1" if op.options.first_write else "0", new_etag(),
                op.ttl() or 0]
    return ["d", "", op.etag or "", "0", "", 0]


def _response(row: Any) -> GetResponse | None:
    if not row:
        return None
    data, version, pttl = row
    etag = version.decode() if version else None
    if pttl is not None and pttl > 0:
        return GetResponse(data, etag, {"ttlExpireTime": expire_time(time.time() + pttl / 1000)})
    return GetResponse(data, etag)


class RedisStateStore(StateStore, TransactionalStore):
    metadata_type = RedisStateMetadata
    features = frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL})

    async def init(self, metadata: RedisStateMetadata) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        # go-redis' defaults (8 ms doubling to maxRetryBackoff): an outage answers in well under
        # a second instead of redis-py's multi-second default backoff
        retry = Retry(ExponentialBackoff(cap=metadata.max_retry_backoff, base=0.008),
                      metadata.max_retries)
        from redis.asyncio import BlockingConnectionPool
        self.client = connect(metadata, retry=retry)
        # a burst waits for a free connection (as go-redis does) instead of failing at the limit
        plain = self.client.connection_pool
        self.client.connection_pool = BlockingConnectionPool(
            connection_class=plain.connection_class, max_connections=metadata.pool_size,
            timeout=metadata.pool_timeout, **plain.connection_kwargs)
        await plain.disconnect()
        self.max_operations = metadata.max_transaction_operations
        await self.client.ping()
        self._get = self.client.register_script(_GET)
        self._multi = self.client.register_script(_MULTI)
        await self.client.script_load(_GET)
        await self.client.script_load(_MULTI)
        self.reader = lean_connection(metadata)

    async def close(self) -> None:
        self.reader.close()
        await self.client.aclose()

    async def _eval(self, script: Any, keys: list[str], args: Sequence[Any] = (),
                    retry: bool = False) -> Any:
        """A script's reply over the lean connection (redis-py reloads a flushed script).
        ``retry``: once more on a fresh connection, for reads (the old one may be stale)."""
        cmd = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            reply = await self.reader.call(*cmd)
        except ConnectionError:
            if not retry:
                raise
            reply = await self.reader.call(*cmd)
        if isinstance(reply, ReplyError):
            if not str(reply).startswith("NOSCRIPT"):
                raise reply
            reply = await script(keys=keys, args=list(args))
        return reply

    async def _read(self, keys: list[str]) -> list[Any]:
        return await self._eval(self._get, keys, retry=True)

    async def ping(self) -> None:
        await self.client.ping()

    async def get(self, req: GetRequest) -> GetResponse | None:
        return _response((await self._read([req.key]))[0])

    async def bulk_get(self, reqs: Sequence[GetRequest], parallelism: int = 0) -> list[BulkGetItem]:
        rows = await self._read([r.key for r in reqs])
        out = []
        for r, row in zip(reqs, rows):
            resp = _response(row)
            out.append(BulkGetItem(r.key) if resp is None
                       else BulkGetItem(r.key, resp.data, resp.etag, resp.metadata))
        return out

    async def _run(self, ops: Sequence[SetRequest | DeleteRequest]) -> None:
        args: list[Any] = []
        for op in ops:
            args.extend(_op_args(op))
        # a write is not retried here: it may have been applied before the connection broke
        failed = await self._eval(self._multi, [op.key for op in ops], args)
        if failed:
            raise ETagMismatch(f"etag or first-write check failed for key {ops[failed - 1].key!r}")

    async def set(self, req: SetRequest) -> None:
        await self._run([req])

    async def delete(self, req: DeleteRequest) -> None:
        await self._run([req])

    async def multi(self, operations: Sequence[TransactionalStateOperation],
                    metadata: dict[str, str]) -> None:
        await self._run([op.request for op in operations])


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("state.redis", "v1", RedisStateStore)]
