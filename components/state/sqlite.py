"""``state.sqlite``: the embedded default store, one SQLite file, no server.

The file defaults to ``$PYDAPR_HOME/state/<component>.db`` (``~/.pydapr``).
It runs in WAL mode so readers never wait for a writer, and several sidecars
may share one file: every write is a ``BEGIN IMMEDIATE`` transaction in which
the ETag check and the write happen together, so two sidecars cannot both
win a first-write or an ETag race. Writes run on one worker thread (a busy
file never stalls the event loop); point reads run inline, as WAL reads do
not block. Expired rows read as missing and are deleted every
``cleanupInterval`` by whichever sidecar sharing the file gets there first.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import orjson

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.kinds import Feature
from pydapr.kinds.state import (BulkGetItem, DeleteRequest, GetRequest, GetResponse, Querier,
                                QueryItem, QueryRequest, QueryResponse, SetRequest, StateStore,
                                TransactionalStateOperation, TransactionalStore, check_etag,
                                expire_time, is_json, new_etag)
from pydapr.kinds.state_query import matches, order, paginate
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["SQLiteStateStore", "SQLiteMetadata", "default_path"]

log = logging.getLogger("pydapr.state")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class SQLiteMetadata:
    connection_string: str = meta("", doc="database file (or file: URI); default "
                                          "$PYDAPR_HOME/state/<component name>.db")
    table_name: str = meta("state", doc="table of the values")
    metadata_table_name: str = meta("metadata", doc="table of the store's own bookkeeping")
    busy_timeout: Duration = meta(Duration(5.0), doc="how long a write waits for another writer")
    cleanup_interval: Duration = meta(Duration(3600.0), doc="how often expired rows are deleted "
                                                            "(0: never)")
    max_transaction_operations: int = meta(0, doc="largest transaction accepted (0: no limit)")


def default_path(name: str) -> Path:
    return Path(os.environ.get("PYDAPR_HOME") or "~/.pydapr").expanduser() / "state" / f"{name}.db"


class SQLiteStateStore(StateStore, TransactionalStore, Querier):
    metadata_type = SQLiteMetadata
    features = frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    async def init(self, metadata: SQLiteMetadata) -> None:
        for ident in (metadata.table_name, metadata.metadata_table_name):
            if not _IDENT.match(ident):
                raise ConfigError(f"component {self.info.name}: {ident!r} is not a valid table name")
        target = metadata.connection_string.strip()
        if target == ":memory:":
            raise ConfigError(f"component {self.info.name}: use state.in-memory for a store in memory")
        if not target:
            path = default_path(self.info.name)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = str(path)
        self.max_operations = metadata.max_transaction_operations
        self.t, self.m = metadata.table_name, metadata.metadata_table_name
        self.cleanup_interval = metadata.cleanup_interval
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-{self.info.name}")
        self._sweeper: asyncio.Task | None = None
        self.wconn = await self._in_thread(self._open, target, metadata.busy_timeout, True)
        self.rconn = self._open(target, metadata.busy_timeout, False)
        if self.cleanup_interval > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    def _open(self, target: str, busy: float, writer: bool) -> Any:
        import sqlite3
        conn = sqlite3.connect(target, timeout=busy, isolation_level=None, check_same_thread=False,
                               uri=target.startswith("file:"))
        conn.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        if writer:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.t} (key TEXT NOT NULL PRIMARY KEY, "
                         "value BLOB NOT NULL, is_json INTEGER NOT NULL, etag TEXT NOT NULL, "
                         "expires REAL, updated REAL NOT NULL)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.t}_expires ON {self.t}(expires) "
                         "WHERE expires IS NOT NULL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.m} (key TEXT NOT NULL PRIMARY KEY, "
                         "value TEXT NOT NULL)")
        return conn

    def _in_thread(self, fn: Any, *args: Any) -> Any:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._in_thread(self.wconn.close)
        self.rconn.close()
        self._pool.shutdown(wait=False)

    async def ping(self) -> None:
        self.rconn.execute("SELECT 1").fetchall()

    # -- reads --------------------------------------------------------------------------

    def _rows(self, keys: Sequence[str]) -> dict[str, tuple]:
        marks = ",".join("?" * len(keys))
        rows = self.rconn.execute(
            f"SELECT key, value, etag, expires FROM {self.t} WHERE key IN ({marks}) "
            "AND (expires IS NULL OR expires > ?)", (*keys, time.time())).fetchall()
        return {r[0]: r for r in rows}

    @staticmethod
    def _response(row: tuple) -> GetResponse:
        _, value, etag, expires = row
        if expires is None:
            return GetResponse(value, etag)
        return GetResponse(value, etag, {"ttlExpireTime": expire_time(expires)})

    async def get(self, req: GetRequest) -> GetResponse | None:
        row = self._rows((req.key,)).get(req.key)
        return None if row is None else self._response(row)

    async def bulk_get(self, reqs: Sequence[GetRequest], parallelism: int = 0) -> list[BulkGetItem]:
        found: dict[str, tuple] = {}
        keys = list(dict.fromkeys(r.key for r in reqs))
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            found.update(self._rows(keys[i:i + 500]))
        out = []
        for r in reqs:
            row = found.get(r.key)
            if row is None:
                out.append(BulkGetItem(r.key))
            else:
                resp = self._response(row)
                out.append(BulkGetItem(r.key, resp.data, resp.etag, resp.metadata))
        return out

    # -- writes (worker thread) ------------------------------------------------------------

    def _apply(self, ops: Sequence[SetRequest | DeleteRequest]) -> None:
        c, t = self.wconn, self.t
        c.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            for op in ops:
                row = c.execute(f"SELECT etag FROM {t} WHERE key = ? AND (expires IS NULL OR "
                                "expires > ?)", (op.key, now)).fetchall()
                current = row[0][0] if row else None
                if isinstance(op, SetRequest):
                    check_etag(current, op.etag, op.options.first_write)
                    ttl = op.ttl()
                    c.execute(f"INSERT INTO {t} (key, value, is_json, etag, expires, updated) "
                              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                              "value = excluded.value, is_json = excluded.is_json, "
                              "etag = excluded.etag, expires = excluded.expires, "
                              "updated = excluded.updated",
                              (op.key, op.value, is_json(op), new_etag(), now + ttl if ttl else None,
                               now))
                else:
                    check_etag(current, op.etag)
                    c.execute(f"DELETE FROM {t} WHERE key = ?", (op.key,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def set(self, req: SetRequest) -> None:
        await self._in_thread(self._apply, (req,))

    async def bulk_set(self, reqs: Sequence[SetRequest]) -> None:
        await self._in_thread(self._apply, reqs)

    async def delete(self, req: DeleteRequest) -> None:
        await self._in_thread(self._apply, (req,))

    async def bulk_delete(self, reqs: Sequence[DeleteRequest]) -> None:
        await self._in_thread(self._apply, reqs)

    async def multi(self, operations: Sequence[TransactionalStateOperation],
                    metadata: dict[str, str]) -> None:
        await self._in_thread(self._apply, [op.request for op in operations])

    # -- query and cleanup (worker thread) -------------------------------------------------------

    def _query_rows(self, prefix: str) -> list[tuple]:
        return self.wconn.execute(
            f"SELECT key, value, etag FROM {self.t} WHERE is_json = 1 AND substr(key, 1, ?) = ? "
            "AND (expires IS NULL OR expires > ?)", (len(prefix), prefix, time.time())).fetchall()

    async def query(self, req: QueryRequest) -> QueryResponse:
        rows = []
        for key, value, etag in await self._in_thread(self._query_rows, req.key_prefix):
            doc = orjson.loads(value)
            if matches(req.query.filter, doc):
                rows.append((key, doc, QueryItem(key, value, etag)))
        page, token = paginate(order(rows, req.query.sort), req.query)
        return QueryResponse(page, token)

    def sweep(self, force: bool = False) -> int:
        """Delete expired rows unless another sidecar did within the interval; returns the count."""
        c, now = self.wconn, time.time()
        c.execute("BEGIN IMMEDIATE")
        try:
            last = c.execute(f"SELECT value FROM {self.m} WHERE key = 'last-cleanup'").fetchall()
            if not force and last and now - float(last[0][0]) < self.cleanup_interval * 0.95:
                c.execute("COMMIT")
                return 0
            n = c.execute(f"DELETE FROM {self.t} WHERE expires IS NOT NULL AND expires <= ?",
                          (now,)).rowcount
            c.execute(f"INSERT INTO {self.m} (key, value) VALUES ('last-cleanup', ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (repr(now),))
            c.execute("COMMIT")
            return n
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                await self._in_thread(self.sweep)
            except Exception as exc:  # a busy file: try again next interval
                log.warning("sqlite cleanup of %s: %s", self.info.name, exc)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("state.sqlite", "v1", SQLiteStateStore)]
