"""Binding components against the real brokers: redelivery when the app refuses an event."""
from __future__ import annotations

import asyncio
import uuid

from pydapr.kinds import ComponentInfo
from pydapr.kinds.bindings import BindingEvent, InvokeRequest
from pydapr.metadata import decode
from pydapr.testing import require_server


async def _make(cls, props):
    comp = cls(ComponentInfo("bind", "bindings.x", app_id="itest", properties=props))
    await comp.init(decode(cls.metadata_type, props))
    return comp


def _refuse_first(count: int):
    calls: list[bytes] = []
    done = asyncio.Event()

    async def handler(event: BindingEvent) -> bytes:
        calls.append(event.data)
        if len(calls) <= count:
            raise ConnectionError("the app answered 500")
        done.set()
        return b""
    return calls, done, handler


async def test_rabbitmq_requeues_what_the_app_refused():
    require_server("rabbitmq")
    from pydapr.components.bindings.rabbitmq import RabbitMQBinding
    comp = await _make(RabbitMQBinding, {"host": "amqp://guest:guest@127.0.0.1:5672",
                                         "queueName": f"itest-{uuid.uuid4().hex}",
                                         "deleteWhenUnused": "true", "reconnectWait": "0.05"})
    try:
        calls, done, handler = _refuse_first(1)
        await comp.read(handler)
        await comp.invoke(InvokeRequest("create", b"m1", {"ttlInSeconds": "60"}))
        await asyncio.wait_for(done.wait(), 10)
        assert calls == [b"m1", b"m1"]
    finally:
        await comp.close()


async def test_mqtt_retries_a_refused_delivery():
    require_server("mqtt")
    from pydapr.components.bindings.mqtt3 import MQTTBinding
    topic = f"pydapr/itest/{uuid.uuid4().hex}"
    comp = await _make(MQTTBinding, {"url": "tcp://127.0.0.1:1883", "topic": topic,
                                     "consumerID": f"itest-{uuid.uuid4().hex}",
                                     "backOffMaxRetries": "3", "cleanSession": "true"})
    try:
        calls, done, handler = _refuse_first(2)
        await comp.read(handler)
        await comp.invoke(InvokeRequest("create", b"hello", {}))
        await asyncio.wait_for(done.wait(), 10)
        assert calls == [b"hello"] * 3
    finally:
        await comp.close()
