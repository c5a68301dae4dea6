"""``pubsub.sqlite``: a durable broker in one SQLite file, no server needed (the embedded default).

Every sidecar on the machine that names the same file shares the broker, so
two apps started with ``pydapr run`` talk to each other. Consumer groups
(``consumerID``, default the app id) each keep a cursor per topic; a new
group starts at the oldest retained message, as Redis Streams groups created
at ``0`` do. A message handed to the app is *leased* to this sidecar; the
lease is renewed while the app works and the row is deleted only when the
app accepted the message. A sidecar that dies mid-delivery stops renewing,
so another sidecar claims the message again once the lease runs out, and a
sidecar restarted on the same host claims it at once (the old process is gone). Publishes that arrive together are written in one transaction.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

from ._inflight import InFlight

__all__ = ["SQLitePubSub", "SQLiteMetadata"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
  data BLOB NOT NULL, metadata TEXT NOT NULL, content_type TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_topic ON messages(topic, id);
CREATE TABLE IF NOT EXISTS cursors (grp TEXT NOT NULL, topic TEXT NOT NULL, last_id INTEGER NOT NULL,
  PRIMARY KEY (grp, topic));
CREATE TABLE IF NOT EXISTS inflight (grp TEXT NOT NULL, topic TEXT NOT NULL, msg_id INTEGER NOT NULL,
  owner TEXT NOT NULL, lease_until REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (grp, msg_id));
CREATE INDEX IF NOT EXISTS inflight_lease ON inflight(grp, topic, lease_until);
"""


@dataclass(frozen=True)
class SQLiteMetadata:
    path: str = meta("", name=("path", "connectionString"),
                     doc="database file; default $PYDAPR_HOME/pubsub-<component name>.db")
    consumer_id: str = meta("", name="consumerID", doc="consumer group; default the app id")
    lease_duration: Duration = meta(Duration(10.0), doc="how long a delivery may run before another "
                                    "sidecar may claim it (renewed while the app works)")
    redeliver_interval: Duration = meta(Duration(0.2), doc="wait before a failed message is retried")
    poll_interval: Duration = meta(Duration(0.05), doc="how often to look for messages from other sidecars")
    retention_period: Duration = meta(Duration(86400.0), doc="messages older than this are deleted")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxConcurrentHandlers"),
                              doc="messages handed to the app at once per subscription (default 16)")


def _default_path(name: str) -> Path:
    return Path(os.environ.get("PYDAPR_HOME", "~/.pydapr")).expanduser() / f"pubsub-{name}.db"


class SQLitePubSub(PubSub):
    metadata_type = SQLiteMetadata
    features = frozenset({Feature.BULK_PUBLISH})

    async def init(self, metadata: SQLiteMetadata) -> None:
        self.md = metadata
        self.group = metadata.consumer_id or self.info.app_id or "default"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.path = Path(metadata.path).expanduser() if metadata.path else _default_path(self.info.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"pubsub-{self.info.name}")
        self.wakeups: dict[str, list[asyncio.Event]] = {}
        self.pending: list[tuple[tuple, asyncio.Future]] = []
        self.flushing = False
        self.acks: list[tuple[str, int]] = []
        self.ack_waiters: list[asyncio.Future] = []
        self.db: sqlite3.Connection = await self._run(self._open)
        self.janitor = asyncio.ensure_future(self._janitor())

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def close(self) -> None:
        self.janitor.cancel()
        if self.acks:
            await self._run(self._ack_rows, self.acks[:])
        await self._run(self.db.close)
        self.pool.shutdown(wait=False)

    # -- publish (group commit) ------------------------------------------------------------

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(((topic, data, orjson.dumps(metadata).decode(), content_type, time.time()),
                             fut))
        if not self.flushing:
            self.flushing = True
            asyncio.ensure_future(self._flush())
        await fut

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self._run(self._insert, [row for row, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
                for topic in {row[0] for row, _ in batch}:
                    for ev in self.wakeups.get(topic, ()):
                        ev.set()
        finally:
            self.flushing = False

    def _insert(self, rows: list[tuple]) -> None:
        with self._tx():
            self.db.executemany("INSERT INTO messages(topic, data, metadata, content_type, created) "
                                "VALUES (?, ?, ?, ?, ?)", rows)

    def _tx(self) -> Any:
        db = self.db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: Any, *rest: Any) -> None:
                db.execute("ROLLBACK" if exc_type else "COMMIT")
        return _Tx()

    # -- subscribe ---------------------------------------------------------------------------

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        group = request.metadata.get("consumerID") or self.group
        await self._run(self._ensure_cursor, group, request.topic)
        wake = asyncio.Event()
        self.wakeups.setdefault(request.topic, []).append(wake)
        limit = in_flight(request, self.md.max_in_flight)
        task = asyncio.ensure_future(self._consume(group, request.topic, handler, limit, wake))

        async def detach() -> None:
            self.wakeups[request.topic].remove(wake)
        return SubscriptionHandle(task, on_close=detach)

    def _ensure_cursor(self, group: str, topic: str) -> None:
        self._release_dead_owners()
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO cursors(grp, topic, last_id) SELECT ?, ?, "
                            "COALESCE((SELECT MIN(id) - 1 FROM messages WHERE topic = ?), "
                            "(SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)",
                            (group, topic, topic))

    def _claim(self, group: str, topic: str, limit: int) -> list[Message]:
        now = time.time()
        lease = now + self.md.lease_duration
        with self._tx():
            db = self.db
            ids = [r[0] for r in db.execute(
                "SELECT msg_id FROM inflight WHERE grp = ? AND topic = ? AND lease_until < ? "
                "ORDER BY msg_id LIMIT ?", (group, topic, now, limit))]
            if ids:
                db.executemany("UPDATE inflight SET owner = ?, lease_until = ?, attempts = attempts + 1 "
                               "WHERE grp = ? AND msg_id = ?", [(self.owner, lease, group, i) for i in ids])
            if len(ids) < limit:
                (cursor,) = db.execute("SELECT last_id FROM cursors WHERE grp = ? AND topic = ?",
                                       (group, topic)).fetchone()
                new = [r[0] for r in db.execute(
                    "SELECT id FROM messages WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
                    (topic, cursor, limit - len(ids)))]
                if new:
                    db.executemany("INSERT OR REPLACE INTO inflight(grp, topic, msg_id, owner, lease_until)"
                                   " VALUES (?, ?, ?, ?, ?)", [(group, topic, i, self.owner, lease) for i in new])
                    db.execute("UPDATE cursors SET last_id = ? WHERE grp = ? AND topic = ?",
                               (new[-1], group, topic))
                    ids += new
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = db.execute(f"SELECT id, data, metadata, content_type FROM messages WHERE id IN ({marks})"
                              " ORDER BY id", ids).fetchall()
            found = {r[0] for r in rows}
            lost = [i for i in ids if i not in found]  # deleted by retention: nothing to deliver
            if lost:
                db.executemany("DELETE FROM inflight WHERE grp = ? AND msg_id = ?", [(group, i) for i in lost])
        return [Message(topic, bytes(r[1]), orjson.loads(r[2]), r[3], str(r[0])) for r in rows]

    async def _consume(self, group: str, topic: str, handler: Handler, limit: int,
                       wake: asyncio.Event) -> None:
        flight = InFlight(limit)
        renew = asyncio.ensure_future(self._renew(group))
        try:
            while True:
                free = await flight.free()
                wake.clear()
                msgs = await self._run(self._claim, group, topic, free)
                for m in msgs:
                    if flight.ordered:  # one at a time, retried in place
                        await self._deliver_ordered(group, m, handler)
                    else:
                        flight.start(self._deliver(group, m, handler))
                if not msgs:
                    try:
                        await asyncio.wait_for(wake.wait(), self.md.poll_interval)
                    except asyncio.TimeoutError:
                        pass
        finally:
            renew.cancel()
            flight.cancel()

    async def _deliver(self, group: str, m: Message, handler: Handler) -> None:
        try:
            await handler(m)
        except Exception:
            await self._run(self._nack, group, int(m.id))
            return
        await self._ack(group, int(m.id))

    async def _deliver_ordered(self, group: str, m: Message, handler: Handler) -> None:
        while True:
            try:
                await handler(m)
                break
            except Exception:
                await asyncio.sleep(self.md.redeliver_interval)
        await self._ack(group, int(m.id))

    async def _ack(self, group: str, msg_id: int) -> None:
        """Acks are batched: concurrent ones are written in one transaction."""
        self.acks.append((group, msg_id))
        fut = asyncio.get_running_loop().create_future()
        self.ack_waiters.append(fut)
        if len(self.ack_waiters) == 1:
            asyncio.ensure_future(self._flush_acks())
        await fut

    async def _flush_acks(self) -> None:
        await asyncio.sleep(0)
        rows, self.acks = self.acks, []
        waiters, self.ack_waiters = self.ack_waiters, []
        try:
            await self._run(self._ack_rows, rows)
        finally:
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def _ack_rows(self, rows: list) -> None:
        with self._tx():
            self.db.executemany("DELETE FROM inflight WHERE grp = ? AND msg_id = ?", rows)

    def _nack(self, group: str, msg_id: int) -> None:
        with self._tx():
            self.db.execute("UPDATE inflight SET owner = '', lease_until = ? WHERE grp = ? AND msg_id = ?",
                            (time.time() + self.md.redeliver_interval, group, msg_id))

    async def _renew(self, group: str) -> None:
        while True:
            await asyncio.sleep(self.md.lease_duration / 3)
            await self._run(self._renew_rows, group)

    def _renew_rows(self, group: str) -> None:
        with self._tx():
            self.db.execute("UPDATE inflight SET lease_until = ? WHERE grp = ? AND owner = ? AND "
                            "lease_until > ?", (time.time() + self.md.lease_duration, group, self.owner,
                                                time.time()))

    # -- housekeeping ------------------------------------------------------------------------

    def _release_dead_owners(self) -> None:
        """Leases held by a process of this host that no longer runs end now, not at expiry."""
        host = socket.gethostname()
        dead = []
        for (owner,) in self.db.execute("SELECT DISTINCT owner FROM inflight WHERE owner LIKE ?",
                                        (f"{host}:%",)).fetchall():
            pid = int(owner.split(":")[1])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                dead.append((owner,))
            except PermissionError:
                pass
        if dead:
            with self._tx():
                self.db.executemany("UPDATE inflight SET owner = '', lease_until = 0 WHERE owner = ?", dead)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(10)
            try:
                await self._run(self._release_dead_owners)
                await self._run(self._collect)
            except sqlite3.Error:
                pass

    def _collect(self) -> None:
        """Delete what every group has consumed, and anything past the retention period."""
        with self._tx():
            self.db.execute(
                "DELETE FROM messages WHERE created < ? OR (topic IN (SELECT topic FROM cursors) AND "
                "id <= (SELECT MIN(last_id) FROM cursors c WHERE c.topic = messages.topic) AND "
                "id NOT IN (SELECT msg_id FROM inflight))", (time.time() - self.md.retention_period,))


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.sqlite", "v1", SQLitePubSub)]
