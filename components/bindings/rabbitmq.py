"""``bindings.rabbitmq``: publish to and consume from one queue (``queueName``).

The queue is declared at start with the component's options. Output
``create`` publishes through the default exchange (request metadata
``ttlInSeconds``, ``priority``, ``contentType``). Input consumes one message
at a time, in queue order: it is acknowledged after the app took it and
rejected back onto the queue when the app refused it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.errors import ComponentError, ConfigError
from pydapr.kinds.bindings import (BOTH, BindingEvent, BindingHandler, InputBinding,
                                   InvokeRequest, InvokeResponse, OutputBinding, metadata_value)
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["RabbitMQBinding", "RabbitMQBindingMetadata"]

log = logging.getLogger("pydapr.bindings.rabbitmq")


@dataclass(frozen=True)
class RabbitMQBindingMetadata:
    queue_name: str = meta(doc="the queue to publish to and consume from")
    host: str = meta("amqp://guest:guest@localhost:5672", name=("host", "connectionString"),
                     sensitive=True, doc="AMQP URL")
    durable: bool = meta(False, doc="the queue survives a broker restart")
    delete_when_unused: bool = meta(False, doc="the queue goes with its last consumer")
    exclusive: bool = meta(False, doc="the queue belongs to this connection only")
    prefetch_count: int = meta(0, doc="messages the broker sends ahead of acknowledgements")
    max_priority: int = meta(0, doc="declare a priority queue with this many levels (1-255)")
    ttl_in_seconds: int = meta(0, doc="default message TTL of the queue (0: none)")
    content_type: str = meta("", doc="content type of published messages")
    reconnect_wait: float = meta(5.0, name=("reconnectWaitInSeconds", "reconnectWait"),
                                 doc="pause before reconnecting after the broker went away")


def _int(md: dict[str, str], name: str) -> int | None:
    text = metadata_value(md, name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ComponentError(f"{name} {text!r} is not a whole number") from None


class RabbitMQBinding(InputBinding, OutputBinding):
    metadata_type = RabbitMQBindingMetadata
    features = BOTH

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.md: RabbitMQBindingMetadata | None = None
        self._conn: Any = None
        self._channel: Any = None
        self._queue: Any = None
        self._tasks: list[asyncio.Task] = []

    async def init(self, metadata: RabbitMQBindingMetadata) -> None:
        import aio_pika
        if not metadata.queue_name:
            raise ConfigError("queueName is required")
        if not 0 <= metadata.max_priority <= 255:
            raise ConfigError("maxPriority must be between 0 and 255")
        self.md = metadata
        self._conn = await aio_pika.connect_robust(metadata.host,
                                                   reconnect_interval=metadata.reconnect_wait)
        self._channel = await self._conn.channel()
        if metadata.prefetch_count > 0:
            await self._channel.set_qos(prefetch_count=metadata.prefetch_count)
        args: dict[str, Any] = {}
        if metadata.max_priority:
            args["x-max-priority"] = metadata.max_priority
        if metadata.ttl_in_seconds > 0:
            args["x-message-ttl"] = metadata.ttl_in_seconds * 1000
        self._queue = await self._channel.declare_queue(
            metadata.queue_name, durable=metadata.durable, auto_delete=metadata.delete_when_unused,
            exclusive=metadata.exclusive, arguments=args or None)

    async def close(self) -> None:
        await self.stop_tasks(self._tasks)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def operations(self) -> list[str]:
        return ["create"]

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        import aio_pika
        ttl = _int(request.metadata, "ttlInSeconds")
        priority = _int(request.metadata, "priority")
        if ttl is not None and ttl <= 0:
            raise ComponentError("ttlInSeconds must be positive")
        if priority is not None and not 0 <= priority <= 255:
            raise ComponentError("priority must be between 0 and 255")
        message = aio_pika.Message(
            request.data, expiration=ttl, priority=priority,
            content_type=metadata_value(request.metadata, "contentType") or self.md.content_type
            or None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if self.md.durable else None)
        try:
            await self._channel.default_exchange.publish(message, routing_key=self.md.queue_name)
        except Exception as exc:
            raise ComponentError(f"rabbitmq: {exc}") from None
        return None

    async def read(self, handler: BindingHandler) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._consume(handler)))

    async def _consume(self, handler: BindingHandler) -> None:
        while True:
            try:
                async with self._queue.iterator() as messages:
                    async for msg in messages:
                        await self._one(handler, msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: consuming %s stopped (%s); resuming in %gs", self.info.name,
                            self.md.queue_name, exc, self.md.reconnect_wait)
                await asyncio.sleep(self.md.reconnect_wait)

    async def _one(self, handler: BindingHandler, msg: Any) -> None:
        md = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        try:
            await handler(BindingEvent(msg.body, md, msg.content_type or ""))
        except asyncio.CancelledError:
            await msg.nack(requeue=True)
            raise
        except Exception as exc:
            log.warning("%s: the app did not take a message (%s); it goes back on the queue",
                        self.info.name, exc)
            await msg.nack(requeue=True)
            await asyncio.sleep(min(1.0, self.md.reconnect_wait))  # no hot loop on a failing app
            return
        await msg.ack()


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.rabbitmq", "v1", RabbitMQBinding)]
