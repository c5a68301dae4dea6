"""``nameresolution.sqlite`` (v1, stable): sidecars on one machine find each other through one file.

The default resolver: no configuration. Every sidecar writes its row (app id,
namespace, address, trust domain) into ``$PYDAPR_HOME/nameresolution.db``
(``~/.pydapr``) and refreshes its heartbeat every ``updateInterval``; a row
whose heartbeat is older than ``timeout`` is ignored (its sidecar died
without saying so) and eventually deleted. Several instances of one app are
picked at random. Lookups are cached for ``cacheTTL`` so the request path
rarely touches the file; database work runs on a worker thread, never on the
event loop.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydapr import hookimpl
from pydapr.kinds.nameresolution import NameResolver, Registration
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["SQLiteResolver", "SQLiteResolverMetadata", "default_path"]

log = logging.getLogger("pydapr.nameresolution")


@dataclass(frozen=True)
class SQLiteResolverMetadata:
    connection_string: str = meta("", doc="database file; default $PYDAPR_HOME/nameresolution.db")
    update_interval: Duration = meta(Duration(2.0), doc="how often this sidecar's heartbeat is written")
    timeout: Duration = meta(Duration(10.0), doc="a row older than this is a dead sidecar")
    cache_ttl: Duration = meta(Duration(1.0), name="cacheTTL", doc="how long a lookup is reused")
    busy_timeout: Duration = meta(Duration(5.0), doc="how long a write waits for another writer")


def default_path() -> Path:
    return Path(os.environ.get("PYDAPR_HOME") or "~/.pydapr").expanduser() / "nameresolution.db"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sidecars (
    instance TEXT PRIMARY KEY, app_id TEXT NOT NULL, namespace TEXT NOT NULL,
    host TEXT NOT NULL, port INTEGER NOT NULL, trust_domain TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL, heartbeat REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sidecars_app ON sidecars (app_id, namespace);
"""


class SQLiteResolver(NameResolver):
    metadata_type = SQLiteResolverMetadata

    async def init(self, metadata: SQLiteResolverMetadata) -> None:
        self.md = metadata
        path = metadata.connection_string or str(default_path())
        if not path.startswith("file:") and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=metadata.busy_timeout, check_same_thread=False,
                                   isolation_level=None, uri=path.startswith("file:"))
        await self._run(self._setup)
        self._instance = uuid.uuid4().hex
        self._me: Registration | None = None
        self._beat: asyncio.Task | None = None
        self._cache: dict[tuple[str, str], tuple[float, list[Registration]]] = {}

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        def locked():  # type: ignore[no-untyped-def]
            with self._lock:
                return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, locked)

    async def register(self, me: Registration) -> None:
        self._me = me
        await self._run(self._write_row)
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())
        log.info("registered %s/%s at %s:%d in %s", me.namespace, me.app_id, me.host, me.port,
                 self.path)

    def _write_row(self) -> None:
        me = self._me
        assert me is not None
        self._db.execute(
            "INSERT OR REPLACE INTO sidecars VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self._instance, me.app_id, me.namespace, me.host, me.port, me.trust_domain,
             os.getpid(), time.time()))

    async def _heartbeat(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.md.update_interval)
            try:
                await self._run(self._write_row)
                n += 1
                if n % 30 == 0:
                    await self._run(self._purge)
            except sqlite3.Error as exc:
                log.warning("name resolution heartbeat failed: %s", exc)

    def _purge(self) -> None:
        self._db.execute("DELETE FROM sidecars WHERE heartbeat < ?",
                         (time.time() - 10 * self.md.timeout,))

    def _lookup(self, app_id: str, namespace: str) -> list[Registration]:
        rows = self._db.execute(
            "SELECT host, port, trust_domain FROM sidecars WHERE app_id = ? AND namespace = ? "
            "AND heartbeat > ?", (app_id, namespace, time.time() - self.md.timeout)).fetchall()
        return [Registration(app_id, namespace, h, int(p), td) for h, p, td in rows]

    async def resolve(self, app_id: str, namespace: str) -> Registration:
        key = (app_id, namespace)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is None or now - hit[0] > self.md.cache_ttl:
            found = await self._run(self._lookup, app_id, namespace)
            hit = (now, found)
            if found:
                self._cache[key] = hit
            else:
                self._cache.pop(key, None)
        if not hit[1]:
            raise LookupError(f"no sidecar of app {app_id!r} in namespace {namespace!r} is "
                              f"registered in {self.path}")
        return hit[1][0] if len(hit[1]) == 1 else random.choice(hit[1])

    def forget(self, app_id: str, namespace: str) -> None:
        self._cache.pop((app_id, namespace), None)

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        try:
            if self._me is not None:
                await self._run(self._db.execute, "DELETE FROM sidecars WHERE instance = ?",
                                (self._instance,))
        finally:
            self._db.close()


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("nameresolution.sqlite", "v1", SQLiteResolver)]
