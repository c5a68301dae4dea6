"""``pubsub.nats`` (alias ``pubsub.jetstream``): NATS JetStream with durable pull consumers.

The topic is the subject. Each topic gets its own stream (``PYDAPR-<topic>``,
created when missing) unless ``streamName`` names an existing one. A
consumer group is a durable consumer ``<consumerID>-<topic>`` with explicit
acknowledgement; ``max_ack_pending`` bounds the messages in flight. A
failed delivery is negatively acknowledged with a ``redeliverInterval``
delay; one whose sidecar died is redelivered after ``ackWait``. Publishing
waits for JetStream's acknowledgement (the message is stored).
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

from ._inflight import InFlight

__all__ = ["JetStreamPubSub", "JetStreamMetadata"]

log = logging.getLogger("pydapr.pubsub.nats")
_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class JetStreamMetadata:
    nats_url: str = meta("nats://localhost:4222", name=("natsURL", "natsUrl"), sensitive=True)
    stream_name: str = meta("", doc="an existing stream to use for every topic; default one per topic")
    consumer_id: str = meta("", name=("consumerID", "durableName"),
                            doc="consumer group (durable prefix); default the app id")
    ack_wait: Duration = meta(Duration(30.0), doc="redelivery after this long without an answer")
    redeliver_interval: Duration = meta(Duration(0.1), doc="delay of a redelivery after a failure")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxAckPending", "maxConcurrentHandlers"),
                              doc="messages handed to the app at once per subscription (default 16)")


def _name(text: str) -> str:
    return _BAD_NAME.sub("_", text)


class JetStreamPubSub(PubSub):
    metadata_type = JetStreamMetadata
    features = frozenset({Feature.BULK_PUBLISH})

    async def init(self, metadata: JetStreamMetadata) -> None:
        import nats
        self.md = metadata
        self.group = metadata.consumer_id or self.info.app_id or "default"
        self.nc = await nats.connect(metadata.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                     name=f"pydapr-{self.info.app_id}")
        self.js = self.nc.jetstream()
        self.streams: dict[str, str] = {}

    async def close(self) -> None:
        await self.nc.drain()

    async def _stream(self, topic: str) -> str:
        name = self.streams.get(topic)
        if name is not None:
            return name
        from nats.js.errors import NotFoundError
        try:
            name = await self.js.find_stream_name_by_subject(topic)
        except NotFoundError:
            name = self.md.stream_name or f"PYDAPR-{_name(topic)}"
            try:
                info = await self.js.stream_info(name)
                await self.js.update_stream(name=name, subjects=[*info.config.subjects, topic])
            except NotFoundError:
                await self.js.add_stream(name=name, subjects=[topic])
        self.streams[topic] = name
        return name

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        await self._stream(topic)
        headers = dict(metadata)
        if content_type:
            headers["Content-Type"] = content_type
        await self.js.publish(topic, data, headers=headers or None)

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        stream = await self._stream(request.topic)
        group = request.metadata.get("consumerID") or self.group
        limit = in_flight(request, self.md.max_in_flight)
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                ack_wait=self.md.ack_wait, max_ack_pending=limit,
                                filter_subject=request.topic)
        psub = await self.js.pull_subscribe(request.topic, durable=_name(f"{group}-{request.topic}"),
                                            stream=stream, config=config)
        flight = InFlight(limit)

        async def stop() -> None:
            flight.cancel()
            await psub.unsubscribe()
        return SubscriptionHandle(asyncio.ensure_future(self._pull(psub, flight, handler, request.topic)),
                                  on_close=stop)

    async def _pull(self, psub: Any, flight: InFlight, handler: Handler, topic: str) -> None:
        import nats.errors
        while True:
            free = await flight.free()
            try:
                msgs = await psub.fetch(batch=free, timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.debug("jetstream fetch on %s failed: %s", topic, exc)
                await asyncio.sleep(0.2)
                continue
            for m in msgs:
                if flight.ordered:
                    await self._deliver(m, handler, topic, ordered=True)
                else:
                    flight.start(self._deliver(m, handler, topic, ordered=False))

    async def _deliver(self, m: Any, handler: Handler, topic: str, ordered: bool) -> None:
        headers = dict(m.headers or {})
        ct = headers.pop("Content-Type", "")
        msg = Message(topic, m.data, headers, ct, str(m.metadata.sequence.stream))
        while True:
            try:
                await handler(msg)
            except Exception:
                if ordered:  # retried in place: a nak would let later messages pass
                    await asyncio.sleep(self.md.redeliver_interval)
                    await m.in_progress()
                    continue
                await m.nak(delay=self.md.redeliver_interval)
                return
            await m.ack()
            return


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.nats", "v1", JetStreamPubSub, aliases=("pubsub.jetstream",))]
