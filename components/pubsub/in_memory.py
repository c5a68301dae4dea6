"""``pubsub.in-memory``: a broker inside the sidecar process (tests, demos, benchmarks).

Each subscription gets its own queue and ``maxInFlight`` workers (16 by
default). A handler that raises puts the message back after
``redeliverInterval``. Messages live only as long as the process: this
component is not durable, and it cannot connect two sidecars.
"""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["InMemoryPubSub", "InMemoryMetadata"]


@dataclass(frozen=True)
class InMemoryMetadata:
    redeliver_interval: Duration = meta(Duration(0.05), doc="wait before a failed message is delivered again")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxConcurrentHandlers"),
                              doc="messages handed to the app at once per subscription (default 16)")


class _Sub:
    __slots__ = ("queue", "handler", "topic")

    def __init__(self, topic: str, handler: Handler) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.handler = handler


class InMemoryPubSub(PubSub):
    metadata_type = InMemoryMetadata
    features = frozenset({Feature.BULK_PUBLISH})

    async def init(self, metadata: InMemoryMetadata) -> None:
        self.md = metadata
        self.subs: dict[str, list[_Sub]] = {}
        self.ids = itertools.count(1)

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        self.publish_nowait(topic, data, metadata, content_type)

    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> bool:
        subs = self.subs.get(topic)
        if subs:
            msg_id = str(next(self.ids))
            for s in subs:
                s.queue.put_nowait(Message(topic, data, dict(metadata), content_type, msg_id))
        return True

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        sub = _Sub(request.topic, handler)
        self.subs.setdefault(request.topic, []).append(sub)
        n = in_flight(request, self.md.max_in_flight)
        workers = [asyncio.ensure_future(self._work(sub, ordered=n == 1)) for _ in range(n)]

        async def detach() -> None:
            self.subs[request.topic].remove(sub)
        return SubscriptionHandle(*workers, on_close=detach)

    async def _work(self, sub: _Sub, ordered: bool) -> None:
        """One worker; with a single worker a failed message is retried in place (order kept)."""
        loop = asyncio.get_running_loop()
        get, handler, interval = sub.queue.get, sub.handler, self.md.redeliver_interval
        while True:
            msg = await get()
            while True:
                try:
                    await handler(msg)
                    break
                except Exception:
                    if ordered:
                        await asyncio.sleep(interval)
                        continue
                    loop.call_later(interval, sub.queue.put_nowait, msg)
                    break


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.in-memory", "v1", InMemoryPubSub)]
