"""``pubsub.redis``: Redis Streams with consumer groups (one stream per topic).

A message stays in the group's pending list until the app accepted it
(``XACK``, batched). Nothing is lost when the connection drops: after a
reconnect the consumer first re-reads its own pending entries (``0``), and
a reclaim loop takes over entries that another consumer left idle longer
than ``processingTimeout`` (``XAUTOCLAIM``). A failed delivery stays
pending and comes back through that loop.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

from .._common.redis_settings import RedisSettings, connect
from .._common.resp import ReplyError, lean_connection
from ._inflight import InFlight

__all__ = ["RedisStreamsPubSub", "RedisMetadata"]

log = logging.getLogger("pydapr.pubsub.redis")


@dataclass(frozen=True)
class RedisMetadata(RedisSettings):
    consumer_id: str = meta("", name="consumerID", doc="consumer group; default the app id")
    consumer_name: str = meta("", doc="consumer within the group; default the group name")
    processing_timeout: Duration = meta(Duration(60.0), doc="idle time after which a pending message "
                                        "is taken over and delivered again")
    redeliver_interval: Duration = meta(Duration(15.0), doc="how often to look for such messages")
    max_len_approx: int = meta(0, doc="trim each stream to about this many entries (0 = never)")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxConcurrentHandlers", "queueDepth"),
                              doc="messages handed to the app at once per subscription (default 16)")


class RedisStreamsPubSub(PubSub):
    metadata_type = RedisMetadata
    features = frozenset({Feature.BULK_PUBLISH})

    async def init(self, metadata: RedisMetadata) -> None:
        self.md = metadata
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        # fail fast on a broken connection: publish errors reach the caller (and its resiliency
        # policy) instead of hiding in the client's default backoff of up to tens of seconds
        self.redis = connect(metadata, max_connections=64, health_check_interval=5,
                             retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
        await self.redis.ping()
        self.group = metadata.consumer_id or self.info.app_id or "default"
        # single publishes: one XADD each, pipelined on a lean connection (redis-py's per-call
        # machinery cost more than the rest of a publish)
        self.lean = lean_connection(metadata)
        self._trim: tuple[Any, ...] = ("MAXLEN", "~", metadata.max_len_approx) \
            if metadata.max_len_approx else ()

    async def close(self) -> None:
        self.lean.close()
        await self.redis.aclose()

    def _xadd(self, topic: str, data: bytes, metadata: dict[str, str],
              content_type: str) -> list[Any]:
        args: list[Any] = ["XADD", topic, *self._trim, "*", "data", data]
        if metadata:
            args += ("metadata", orjson.dumps(metadata))
        if content_type:
            args += ("contentType", content_type)
        return args

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        args = self._xadd(topic, data, metadata, content_type)
        try:
            reply = await self.lean.call(*args)
        except ConnectionError:  # once more on a fresh connection (at least once allows it)
            reply = await self.lean.call(*args)
        if isinstance(reply, ReplyError):
            raise reply

    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> bool | asyncio.Future:
        """XADD sent at once on the open lean connection: the future of its reply (an error
        reply fails it). False when not connected: :meth:`publish` connects, and retries once
        on a connection lost under it, which this path leaves to the caller."""
        return self.lean.send_nowait(*self._xadd(topic, data, metadata, content_type)) or False

    async def bulk_publish(self, topic: str, entries: list, metadata: dict[str, str]) -> list:
        """One pipeline round trip for the whole batch."""
        from pydapr.kinds.pubsub import BulkFailure
        pipe = self.redis.pipeline(transaction=False)
        for e in entries:
            fields: dict[str, Any] = {"data": e.data}
            md = {**metadata, **e.metadata}
            if md:
                fields["metadata"] = orjson.dumps(md)
            if e.content_type:
                fields["contentType"] = e.content_type
            pipe.xadd(topic, fields)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            return [BulkFailure(e.entry_id, str(exc)) for e in entries]
        return [BulkFailure(e.entry_id, str(r)) for e, r in zip(entries, results) if isinstance(r, Exception)]

    # -- subscribe -------------------------------------------------------------------------

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        from redis.exceptions import ResponseError
        group = request.metadata.get("consumerID") or self.group
        try:
            await self.redis.xgroup_create(request.topic, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        sub = _Consumer(self, request.topic, group, self.md.consumer_name or group, handler,
                        in_flight(request, self.md.max_in_flight))
        return SubscriptionHandle(asyncio.ensure_future(sub.read()), asyncio.ensure_future(sub.reclaim()),
                                  asyncio.ensure_future(sub.acker()), on_close=sub.close)


def _message(topic: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
    raw_md = fields.get(b"metadata")
    md = orjson.loads(raw_md) if raw_md else {}
    ct = fields.get(b"contentType", b"").decode()
    return Message(topic, fields.get(b"data", b""), md, ct, entry_id.decode())


class _Consumer:
    """One subscription: reader, reclaimer and acker loops around one in-flight set."""

    def __init__(self, comp: RedisStreamsPubSub, topic: str, group: str, consumer: str, handler: Handler,
                 limit: int) -> None:
        self.comp, self.r, self.topic, self.group = comp, comp.redis, topic, group
        self.consumer, self.handler = consumer, handler
        self.flight = InFlight(limit)
        self.busy: set[str] = set()  # entry ids being delivered by this process
        self.acks: list[str] = []
        self.ack_ready = asyncio.Event()
        self.backlog = True  # re-read our own pending entries first (after start and reconnects)

    async def read(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError
        from redis.exceptions import TimeoutError as RedisTimeout
        delay = 0.05
        last = "0"
        while True:
            free = await self.flight.free()
            try:
                if self.backlog:
                    resp = await self.r.xreadgroup(self.group, self.consumer, {self.topic: last}, count=free)
                else:
                    resp = await self.r.xreadgroup(self.group, self.consumer, {self.topic: ">"}, count=free,
                                                   block=1000)
                delay = 0.05
            except (RedisConnectionError, RedisTimeout, OSError, ResponseError) as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    await self._recreate()
                log.debug("redis read on %s failed (%s); retrying", self.topic, exc)
                self.backlog, last = True, "0"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            entries = resp[0][1] if resp else []
            if self.backlog:
                if not entries:
                    self.backlog = False
                    continue
                last = entries[-1][0].decode()
            self._dispatch(entries)

    async def _recreate(self) -> None:
        try:
            await self.r.xgroup_create(self.topic, self.group, id="0", mkstream=True)
        except Exception:
            pass

    def _dispatch(self, entries: list) -> None:
        for entry_id, fields in entries:
            key = entry_id.decode()
            if key in self.busy or not fields:  # already being delivered, or trimmed away
                if not fields:
                    self._ack(key)
                continue
            self.busy.add(key)
            self.flight.start(self._deliver(_message(self.topic, entry_id, fields)))

    async def _deliver(self, msg: Message) -> None:
        try:
            if self.flight.ordered:
                while True:
                    try:
                        await self.handler(msg)
                        break
                    except Exception:
                        await asyncio.sleep(min(self.comp.md.redeliver_interval, 0.5))
            else:
                try:
                    await self.handler(msg)
                except Exception:
                    return  # stays pending; the reclaim loop delivers it again
            self._ack(msg.id)
        finally:
            self.busy.discard(msg.id)

    def _ack(self, entry_id: str) -> None:
        self.acks.append(entry_id)
        self.ack_ready.set()

    async def acker(self) -> None:
        """Send acknowledgements in batches; keep them across connection failures."""
        while True:
            await self.ack_ready.wait()
            self.ack_ready.clear()
            await self.flush_acks()
            if self.acks:
                await asyncio.sleep(0.1)
                self.ack_ready.set()

    async def flush_acks(self) -> None:
        while self.acks:
            batch, self.acks = self.acks[:1000], self.acks[1000:]
            try:
                await self.r.xack(self.topic, self.group, *batch)
            except Exception as exc:
                log.debug("redis XACK on %s failed (%s); will retry", self.topic, exc)
                self.acks[:0] = batch
                return

    async def close(self) -> None:
        self.flight.cancel()
        await self.flush_acks()

    async def reclaim(self) -> None:
        md = self.comp.md
        while True:
            await asyncio.sleep(md.redeliver_interval)
            try:
                start = "0-0"
                while True:
                    free = await self.flight.free()
                    resp = await self.r.xautoclaim(self.topic, self.group, self.consumer,
                                                   int(md.processing_timeout * 1000), start, count=free)
                    start, claimed = resp[0], resp[1]
                    self._dispatch([(eid, f) for eid, f in claimed])
                    if start in (b"0-0", "0-0") or not claimed:
                        break
            except Exception as exc:
                log.debug("redis reclaim on %s failed: %s", self.topic, exc)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.redis", "v1", RedisStreamsPubSub)]
