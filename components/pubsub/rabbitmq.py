"""``pubsub.rabbitmq``: a durable fanout exchange per topic, a durable queue per consumer group.

As in Dapr, the exchange is named after the topic and the queue
``<consumerID>-<topic>``. Publishing waits for the broker's publisher
confirm and marks messages persistent; it goes through the lean publisher of
``_common.amqp`` (``amqp://``) or aio-pika (``amqps://``), and a topic nobody
subscribes to drops the message, as in Dapr. The prefetch count bounds the
messages in flight (16 by default). A failed delivery is rejected after
``redeliverInterval``: requeued by default (at-least-once; Dapr's default
drops it), or routed to the queue's dead-letter exchange
``dlx-<queue>`` (bound to the durable queue ``dlq-<queue>``) with
``enableDeadLetter``. The connection is robust: it reconnects and declares
its queues and consumers again by itself.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["RabbitMQPubSub", "RabbitMQMetadata"]


@dataclass(frozen=True)
class RabbitMQMetadata:
    connection_string: str = meta("amqp://guest:guest@localhost:5672/", name=("connectionString", "host"),
                                  sensitive=True, doc="amqp:// URL")
    consumer_id: str = meta("", name="consumerID", doc="consumer group (queue prefix); default the app id")
    durable: bool = meta(True, doc="durable exchanges and queues")
    auto_delete: bool = meta(False, name=("autoDelete", "deleteWhenUnused"),
                             doc="delete the queue when its last consumer leaves")
    requeue_in_failure: bool = meta(True, doc="requeue a failed message (else drop or dead-letter)")
    enable_dead_letter: bool = meta(False, doc="reject failed messages to dlx-<queue> / dlq-<queue>")
    prefetch_count: int = meta(0, doc="unacknowledged messages per consumer; default the in-flight limit")
    redeliver_interval: Duration = meta(Duration(0.1), doc="wait before rejecting a failed message")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxConcurrentHandlers"),
                              doc="messages handed to the app at once per subscription (default 16)")


class RabbitMQPubSub(PubSub):
    metadata_type = RabbitMQMetadata
    features = frozenset({Feature.MESSAGE_TTL, Feature.BULK_PUBLISH})

    async def init(self, metadata: RabbitMQMetadata) -> None:
        import aio_pika
        self.md = metadata
        self.group = metadata.consumer_id or self.info.app_id or "default"
        self.conn = await aio_pika.connect_robust(metadata.connection_string)
        self.channel = await self.conn.channel(publisher_confirms=True)
        self.exchanges: dict[tuple[int, str], Any] = {}
        self.publisher: Any = None
        self.plain_properties: dict[str, bytes] = {}  # by content type, for publishes without metadata
        if metadata.connection_string.startswith("amqp://"):  # amqps:// publishes through aio-pika
            from pamqp.commands import Basic

            from .._common.amqp import AMQPPublisher
            self.publisher, self.properties = AMQPPublisher(metadata.connection_string), Basic.Properties

    async def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        await self.conn.close()

    async def _exchange(self, channel: Any, topic: str) -> Any:
        key = (id(channel), topic)
        ex = self.exchanges.get(key)
        if ex is None:
            import aio_pika
            ex = await channel.declare_exchange(topic, aio_pika.ExchangeType.FANOUT, durable=self.md.durable)
            self.exchanges[key] = ex
        return ex

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        ex = await self._exchange(self.channel, topic)
        ttl = metadata.get("ttlInSeconds")
        if self.publisher is not None:
            props: Any = self.plain_properties.get(content_type) if not metadata else None
            if props is None:
                props = self.properties(content_type=content_type or None, headers=dict(metadata),
                                        delivery_mode=2,
                                        expiration=str(int(ttl) * 1000) if ttl else None)
                if not metadata and len(self.plain_properties) < 64:  # marshalled once each
                    props = self.plain_properties[content_type] = props.marshal()
            await self.publisher.publish(topic, data, props)
            return
        import aio_pika
        msg = aio_pika.Message(data, content_type=content_type or None, headers=dict(metadata),
                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                               expiration=int(ttl) if ttl else None)
        # not mandatory: the broker would send back every message to a topic without subscribers
        await ex.publish(msg, routing_key="", mandatory=False)

    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> bool | asyncio.Future:
        """The common case, sent at once: no metadata, an exchange declared before, the lean
        connection open. Returns the future of the broker's confirm; False otherwise."""
        if self.publisher is None or metadata or (id(self.channel), topic) not in self.exchanges:
            return False
        props = self.plain_properties.get(content_type)
        if props is None:
            return False
        return self.publisher.publish_nowait(topic, data, props) or False

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        import aio_pika
        md = self.md
        group = request.metadata.get("consumerID") or self.group
        limit = in_flight(request, md.max_in_flight)
        channel = await self.conn.channel()
        await channel.set_qos(prefetch_count=limit if limit == 1 else (md.prefetch_count or limit))
        ex = await self._exchange(channel, request.topic)
        qname = f"{group}-{request.topic}"
        args: dict[str, Any] = {}
        if md.enable_dead_letter:
            dlx = await channel.declare_exchange(f"dlx-{qname}", aio_pika.ExchangeType.FANOUT,
                                                 durable=md.durable)
            dlq = await channel.declare_queue(f"dlq-{qname}", durable=md.durable)
            await dlq.bind(dlx)
            args["x-dead-letter-exchange"] = f"dlx-{qname}"
        queue = await channel.declare_queue(qname, durable=md.durable, auto_delete=md.auto_delete,
                                            arguments=args or None)
        await queue.bind(ex)
        requeue = md.requeue_in_failure and not md.enable_dead_letter
        topic = request.topic
        ordered = limit == 1

        async def on_message(m: Any) -> None:
            headers = {str(k): v.decode() if isinstance(v, bytes) else str(v)
                       for k, v in (m.headers or {}).items()}
            msg = Message(topic, m.body, headers, m.content_type or "", str(m.delivery_tag))
            while True:
                try:
                    await handler(msg)
                except Exception:
                    await asyncio.sleep(md.redeliver_interval)
                    if ordered:
                        continue  # retried in place: requeueing would reorder
                    await m.reject(requeue=requeue)
                    return
                await m.ack()
                return

        tag = await queue.consume(on_message)

        async def stop() -> None:
            try:
                await queue.cancel(tag)
            finally:
                await channel.close()
                self.exchanges = {k: v for k, v in self.exchanges.items() if k[0] != id(channel)}
        return SubscriptionHandle(on_close=stop)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.rabbitmq", "v1", RabbitMQPubSub)]
