"""``state.postgresql`` (alias ``state.postgres``): PostgreSQL through asyncpg.

The table (``tableName``, created on first use under an advisory lock so
sidecars starting together do not race) keeps the value's exact bytes and,
when the value is JSON, a ``jsonb`` copy that the query API filters and
sorts on. Every conditional write is one statement whose ``WHERE`` carries
the ETag or first-write check, so the check and the write are atomic; a
transaction runs its operations in one database transaction and rolls back
on the first failed check. Expired rows read as missing and are deleted every
``cleanupInterval``.
"""
from __future__ import annotations

import asyncio
import logging
import re
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from pydapr import hookimpl
from pydapr.components._common.postgres_settings import pool
from pydapr.errors import ConfigError, ETagMismatch
from pydapr.kinds import Feature
from pydapr.kinds.state import (BulkGetItem, DeleteRequest, GetRequest, GetResponse, Querier,
                                QueryItem, QueryRequest, QueryResponse, SetRequest, StateStore,
                                TransactionalStateOperation, TransactionalStore, expire_time,
                                is_json, new_etag, parse_etag)
from pydapr.kinds.state_query import Bool, Cmp, Filter, In, page_window
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["PostgresStateStore", "PostgresMetadata", "to_sql"]

log = logging.getLogger("pydapr.state")

_TABLE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$")
_OPS = {"EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}
_LIVE = "(expires IS NULL OR expires > now())"


@dataclass(frozen=True)
class PostgresMetadata:
    connection_string: str = meta(sensitive=True, doc="libpq key=value list or postgres:// URL")
    table_name: str = meta("pydapr_state", doc="table of the values (optionally schema.table)")
    timeout: Duration = meta(Duration(20.0), name=("timeout", "timeoutInSeconds"),
                             doc="timeout of one database operation")
    cleanup_interval: Duration = meta(Duration(3600.0), name=("cleanupInterval",
                                                              "cleanupIntervalInSeconds"),
                                      doc="how often expired rows are deleted (0: never)")
    max_conns: int = meta(10, doc="largest number of pooled connections")
    max_transaction_operations: int = meta(0, doc="largest transaction accepted (0: no limit)")


def to_sql(flt: Filter, params: list[Any]) -> str:
    """The WHERE fragment for a parsed filter over the ``doc`` column (params appended)."""
    if isinstance(flt, Bool):
        return "(" + f" {flt.op} ".join(to_sql(f, params) for f in flt.items) + ")"
    params.append(list(flt.path))
    field = f"(doc #> ${len(params)}::text[])"
    if isinstance(flt, In):
        params.append([orjson.dumps(v).decode() for v in flt.values])
        return f"{field} = ANY(${len(params)}::jsonb[])"
    assert isinstance(flt, Cmp)
    params.append(orjson.dumps(flt.value).decode())
    return f"{field} {_OPS[flt.op]} ${len(params)}::jsonb"


def _changed(status: str) -> bool:
    """Whether an INSERT/UPDATE/DELETE status (``UPDATE 1``) touched a row."""
    return not status.endswith(" 0")


class PostgresStateStore(StateStore, TransactionalStore, Querier):
    metadata_type = PostgresMetadata
    features = frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    async def init(self, metadata: PostgresMetadata) -> None:
        if not _TABLE.match(metadata.table_name):
            raise ConfigError(f"component {self.info.name}: {metadata.table_name!r} is not a valid "
                              "table name")
        t = self.t = metadata.table_name
        self.timeout = metadata.timeout
        self.max_operations = metadata.max_transaction_operations
        self.pool = await pool(metadata.connection_string, min_size=1, max_size=metadata.max_conns,
                               command_timeout=metadata.timeout)
        index = t.rsplit(".", 1)[-1] + "_expires"
        async with self.pool.acquire() as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(t.encode()))
            await c.execute(f"CREATE TABLE IF NOT EXISTS {t} (key text PRIMARY KEY, value bytea NOT "
                            "NULL, doc jsonb, etag bigint NOT NULL, expires timestamptz, "
                            "updated timestamptz NOT NULL DEFAULT now())")
            await c.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {t} (expires) "
                            "WHERE expires IS NOT NULL")
        self._upsert = (f"INSERT INTO {t} AS s (key, value, doc, etag, expires) VALUES ($1, $2, "
                        "$3::jsonb, $4, now() + $5::int * interval '1 second') ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value, doc = excluded.doc, etag = "
                        "excluded.etag, expires = excluded.expires, updated = now()")
        self._update = (f"UPDATE {t} SET value = $2, doc = $3::jsonb, etag = $4, expires = now() + "
                        f"$5::int * interval '1 second', updated = now() WHERE key = $1 AND "
                        f"etag = $6 AND {_LIVE}")
        self._select = f"SELECT key, value, etag, expires FROM {t} WHERE key = ANY($1) AND {_LIVE}"
        self._sweeper = None
        if metadata.cleanup_interval > 0:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_loop(metadata.cleanup_interval))

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.wait_for(self.pool.close(), 5)

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # -- reads --------------------------------------------------------------------------

    @staticmethod
    def _response(row: Any) -> GetResponse:
        expires = row["expires"]
        meta_ = {"ttlExpireTime": expire_time(expires.timestamp())} if expires is not None else {}
        return GetResponse(row["value"], str(row["etag"]), meta_)

    async def get(self, req: GetRequest) -> GetResponse | None:
        row = await self.pool.fetchrow(self._select, [req.key])
        return None if row is None else self._response(row)

    async def bulk_get(self, reqs: Sequence[GetRequest], parallelism: int = 0) -> list[BulkGetItem]:
        rows = {r["key"]: r for r in await self.pool.fetch(self._select, [r.key for r in reqs])}
        out = []
        for r in reqs:
            row = rows.get(r.key)
            if row is None:
                out.append(BulkGetItem(r.key))
            else:
                resp = self._response(row)
                out.append(BulkGetItem(r.key, resp.data, resp.etag, resp.metadata))
        return out

    # -- writes ---------------------------------------------------------------------------

    async def _apply(self, c: Any, op: SetRequest | DeleteRequest) -> None:
        etag = parse_etag(op.etag) if op.etag is not None else None
        if isinstance(op, SetRequest):
            doc = op.value.decode() if is_json(op) else None
            args = (op.key, op.value, doc, int(new_etag()), op.ttl())
            if etag is not None:
                status = await c.execute(self._update, *args, etag)
            elif op.options.first_write:
                status = await c.execute(self._upsert + f" WHERE s.expires IS NOT NULL AND "
                                                        "s.expires <= now()", *args)
            else:
                status = await c.execute(self._upsert, *args)
        elif etag is not None:
            status = await c.execute(f"DELETE FROM {self.t} WHERE key = $1 AND etag = $2 AND {_LIVE}",
                                     op.key, etag)
        else:
            await c.execute(f"DELETE FROM {self.t} WHERE key = $1", op.key)
            return
        if not _changed(status):
            raise ETagMismatch(f"etag or first-write check failed for key {op.key!r}")

    async def _run(self, ops: Sequence[SetRequest | DeleteRequest]) -> None:
        async with self.pool.acquire() as c:
            if len(ops) == 1:
                await self._apply(c, ops[0])
                return
            async with c.transaction():
                for op in ops:
                    await self._apply(c, op)

    async def set(self, req: SetRequest) -> None:
        await self._run((req,))

    async def delete(self, req: DeleteRequest) -> None:
        await self._run((req,))

    async def multi(self, operations: Sequence[TransactionalStateOperation],
                    metadata: dict[str, str]) -> None:
        await self._run([op.request for op in operations])

    # -- query and cleanup ------------------------------------------------------------------

    async def query(self, req: QueryRequest) -> QueryResponse:
        q = req.query
        offset, limit = page_window(q)
        params: list[Any] = [req.key_prefix]
        where = f"doc IS NOT NULL AND starts_with(key, $1) AND {_LIVE}"
        if q.filter is not None:
            where += " AND " + to_sql(q.filter, params)
        orders = []
        for s in q.sort:
            params.append(list(s.path))
            orders.append(f"doc #> ${len(params)}::text[] "
                          + ("DESC NULLS FIRST" if s.descending else "ASC NULLS LAST"))
        sql = (f"SELECT key, value, etag FROM {self.t} WHERE {where} ORDER BY "
               + ", ".join([*orders, "key"]) + f" OFFSET {offset}")
        if limit:
            sql += f" LIMIT {limit + 1}"
        rows = await self.pool.fetch(sql, *params)
        more = bool(limit) and len(rows) > limit
        items = [QueryItem(r["key"], r["value"], str(r["etag"])) for r in rows[:limit or None]]
        return QueryResponse(items, str(offset + len(items)) if more else "")

    async def sweep(self) -> int:
        """Delete expired rows (skipped while another sidecar is doing it); returns the count."""
        async with self.pool.acquire() as c, c.transaction():
            if not await c.fetchval("SELECT pg_try_advisory_xact_lock($1)",
                                    zlib.crc32(f"{self.t}:cleanup".encode())):
                return 0
            status = await c.execute(f"DELETE FROM {self.t} WHERE expires IS NOT NULL AND "
                                     "expires <= now()")
        return int(status.rsplit(" ", 1)[-1])

    async def _sweep_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception as exc:  # server away: try again next interval
                log.warning("postgresql cleanup of %s: %s", self.info.name, exc)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("state.postgresql", "v1", PostgresStateStore, aliases=("state.postgres",))]
