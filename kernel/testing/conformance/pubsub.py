"""Conformance suite for the ``pubsub`` kind: the behaviour every broker component must show.

Use it from a test module, one class per component::

    from pydapr.testing.conformance.pubsub import PubSubConformance

    class TestMyBroker(PubSubConformance):
        component_type = "pubsub.mybroker"       # an installed type, or set component_class
        metadata = {"host": "localhost:1234"}
        server = "redis"                          # a pydapr.testing server name, or None

The tests publish and subscribe on fresh topics through the kind interface
only (:class:`pydapr.kinds.pubsub.PubSub`), so they run against the real
broker. Flags switch off what a broker cannot do (``carries_metadata`` for
MQTT 3, ``durable`` for in-memory brokers).
"""
from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator, Callable

import pytest

from ...kinds import ComponentInfo
from ...kinds.pubsub import DEFAULT_IN_FLIGHT, BulkEntry, Message, PubSub, SubscribeRequest
from ...metadata import decode

__all__ = ["PubSubConformance", "make_pubsub", "Inbox"]


async def make_pubsub(component: type | str, metadata: dict[str, str], name: str = "conformance",
                      app_id: str = "conformance-app") -> PubSub:
    """Create and initialise a component by class or by installed type name."""
    if isinstance(component, str):
        from ...pluginmanager import PluginManager
        pm = PluginManager()
        if not pm.load(component):
            raise LookupError(f"no installed plugin provides {component}")
        cls = pm.registry().component(component, "v1").factory
        type_name = component
    else:
        cls, type_name = component, "pubsub.under-test"
    comp = cls(ComponentInfo(name, type_name, "v1", app_id, "default", dict(metadata)))
    md = decode(comp.metadata_type, metadata, name) if comp.metadata_type else metadata
    await comp.init(md)
    return comp


class Inbox:
    """A handler that records what it receives, with ways to fail or hold deliveries."""

    def __init__(self, fail: Callable[[Message], bool] = lambda m: False) -> None:
        self.messages: list[Message] = []
        self.fail = fail
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold: asyncio.Event | None = None
        self.changed = asyncio.Event()

    async def __call__(self, msg: Message) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.changed.set()
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.fail(msg):
                raise RuntimeError("handler failure requested by the test")
            self.messages.append(msg)
            self.changed.set()
        finally:
            self.in_flight -= 1

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"received {len(self.messages)}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass

    def datas(self) -> list[bytes]:
        return [m.data for m in self.messages]


class PubSubConformance:
    """Subclass with ``component_type`` (or ``component_class``) and ``metadata``."""

    component_type: str = ""
    component_class: type | None = None
    metadata: dict[str, str] = {}
    server: str | None = None
    #: metadata and content type published come back on the message
    carries_metadata: bool = True
    #: a message not acknowledged when the component closes is delivered to a new instance
    durable: bool = True
    #: order is kept with ``concurrencyMode=single``
    ordered: bool = True
    #: seconds within which a failed delivery must come back
    redelivery_timeout: float = 10.0

    @pytest.fixture
    async def pubsub(self) -> AsyncIterator[PubSub]:
        comp = await self.make()
        try:
            yield comp
        finally:
            await comp.close()

    @pytest.fixture
    def topic(self) -> str:
        return f"conformance-{uuid.uuid4().hex[:12]}"

    async def make(self, **overrides: str) -> PubSub:
        if self.server:
            from ..servers import require_server
            require_server(self.server)
        return await make_pubsub(self.component_class or self.component_type,
                                 {**self.metadata, **overrides})

    # -- the suite --------------------------------------------------------------------------

    async def test_published_messages_are_delivered(self, pubsub: PubSub, topic: str) -> None:
        inbox = Inbox()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        sent = [f"message {i}".encode() for i in range(5)]
        for data in sent:
            await pubsub.publish(topic, data, {})
        await inbox.until(lambda: len(inbox.messages) >= 5, 10, "5 messages")
        assert sorted(inbox.datas()) == sorted(sent)
        assert all(m.topic == topic for m in inbox.messages)
        await handle.close()

    async def test_publish_nowait_keeps_its_promise(self, pubsub: PubSub, topic: str) -> None:
        """True: published. A future: published once it completes. False: not taken."""
        inbox = Inbox()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        await pubsub.publish(topic, b"first", {}, "text/plain")  # connected, topic known
        sent = [b"first"]
        for i in range(5):
            data = f"nowait {i}".encode()
            done = pubsub.publish_nowait(topic, data, {}, "text/plain")
            if done is False:
                continue
            if done is not True:
                assert asyncio.isfuture(done), f"publish_nowait returned {done!r}"
                await asyncio.wait_for(done, 10)
            sent.append(data)
        await inbox.until(lambda: len(inbox.messages) >= len(sent), 10, f"{len(sent)} messages")
        assert sorted(inbox.datas()) == sorted(sent)
        await handle.close()

    async def test_metadata_and_content_type_travel_with_the_message(self, pubsub: PubSub,
                                                                     topic: str) -> None:
        if not self.carries_metadata:
            pytest.skip("this broker carries no message metadata")
        inbox = Inbox()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        await pubsub.publish(topic, b'{"a": 1}', {"tenant": "blue"}, "application/cloudevents+json")
        await inbox.until(lambda: bool(inbox.messages), 10, "one message")
        msg = inbox.messages[0]
        assert msg.metadata.get("tenant") == "blue"
        assert msg.content_type == "application/cloudevents+json"
        await handle.close()

    async def test_failed_delivery_is_delivered_again(self, pubsub: PubSub, topic: str) -> None:
        failed: set[bytes] = set()

        def fail_once(m: Message) -> bool:
            if m.data.endswith(b"2") and m.data not in failed:
                failed.add(m.data)
                return True
            return False
        inbox = Inbox(fail_once)
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        for i in range(4):
            await pubsub.publish(topic, f"m{i}".encode(), {})
        await inbox.until(lambda: len(set(inbox.datas())) >= 4, self.redelivery_timeout,
                          "every message, the failed one delivered again")
        assert failed == {b"m2"}
        assert sorted(set(inbox.datas())) == [b"m0", b"m1", b"m2", b"m3"]
        await handle.close()

    async def test_many_messages_are_in_flight_at_once(self, pubsub: PubSub, topic: str) -> None:
        inbox = Inbox()
        inbox.hold = asyncio.Event()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        for i in range(DEFAULT_IN_FLIGHT + 4):
            await pubsub.publish(topic, f"c{i}".encode(), {})
        try:
            await inbox.until(lambda: inbox.in_flight >= DEFAULT_IN_FLIGHT, 10,
                              f"{DEFAULT_IN_FLIGHT} deliveries in flight")
        finally:
            inbox.hold.set()
        await inbox.until(lambda: len(inbox.messages) >= DEFAULT_IN_FLIGHT + 4, 10, "all messages")
        assert inbox.max_in_flight <= DEFAULT_IN_FLIGHT
        await handle.close()

    async def test_single_concurrency_keeps_order(self, pubsub: PubSub, topic: str) -> None:
        if not self.ordered:
            pytest.skip("this broker does not keep order")
        failed: list[bytes] = []

        def fail_once(m: Message) -> bool:
            if m.data == b"007" and not failed:
                failed.append(m.data)
                return True
            return False
        inbox = Inbox(fail_once)
        handle = await pubsub.subscribe(SubscribeRequest(topic, {"concurrencyMode": "single"}), inbox)
        sent = [f"{i:03d}".encode() for i in range(20)]
        for data in sent:
            await pubsub.publish(topic, data, {})
        await inbox.until(lambda: len(inbox.messages) >= 20, self.redelivery_timeout + 10, "20 messages")
        assert inbox.datas() == sent
        assert inbox.max_in_flight == 1
        await handle.close()

    async def test_bulk_publish(self, pubsub: PubSub, topic: str) -> None:
        inbox = Inbox()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        entries = [BulkEntry(f"e{i}", f"bulk {i}".encode(), "text/plain") for i in range(10)]
        assert await pubsub.bulk_publish(topic, entries, {}) == []
        await inbox.until(lambda: len(inbox.messages) >= 10, 10, "10 messages")
        assert sorted(inbox.datas()) == sorted(e.data for e in entries)
        await handle.close()

    async def test_topics_are_isolated(self, pubsub: PubSub, topic: str) -> None:
        a, b = Inbox(), Inbox()
        ha = await pubsub.subscribe(SubscribeRequest(topic + "-a"), a)
        hb = await pubsub.subscribe(SubscribeRequest(topic + "-b"), b)
        await pubsub.publish(topic + "-a", b"for a", {})
        await pubsub.publish(topic + "-b", b"for b", {})
        await a.until(lambda: bool(a.messages), 10, "a's message")
        await b.until(lambda: bool(b.messages), 10, "b's message")
        assert a.datas() == [b"for a"] and b.datas() == [b"for b"]
        await ha.close()
        await hb.close()

    async def test_closed_subscription_receives_nothing(self, pubsub: PubSub, topic: str) -> None:
        inbox = Inbox()
        handle = await pubsub.subscribe(SubscribeRequest(topic), inbox)
        await pubsub.publish(topic, b"before", {})
        await inbox.until(lambda: bool(inbox.messages), 10, "the first message")
        await handle.close()
        await pubsub.publish(topic, b"after", {})
        await asyncio.sleep(0.3)
        assert inbox.datas() == [b"before"]

    async def test_unacknowledged_message_survives_a_restart(self, topic: str) -> None:
        if not self.durable:
            pytest.skip("this broker keeps nothing across a restart")
        first = await self.make()
        held = Inbox()
        held.hold = asyncio.Event()  # never set: the app never answers
        handle = await first.subscribe(SubscribeRequest(topic), held)
        await first.publish(topic, b"survivor", {})
        await held.until(lambda: held.in_flight >= 1, 10, "the delivery to start")
        await handle.close()
        await first.close()
        second = await self.make()
        try:
            inbox = Inbox()
            handle = await second.subscribe(SubscribeRequest(topic), inbox)
            await inbox.until(lambda: b"survivor" in inbox.datas(), self.redelivery_timeout + 10,
                              "the unacknowledged message after a restart")
            await handle.close()
        finally:
            await second.close()

    async def test_acknowledged_message_is_not_delivered_again(self, topic: str) -> None:
        if not self.durable:
            pytest.skip("this broker keeps nothing across a restart")
        first = await self.make()
        inbox = Inbox()
        handle = await first.subscribe(SubscribeRequest(topic), inbox)
        await first.publish(topic, b"once", {})
        await inbox.until(lambda: bool(inbox.messages), 10, "the message")
        await asyncio.sleep(0.2)  # let a batched acknowledgement reach the broker
        await handle.close()
        await first.close()
        second = await self.make()
        try:
            again = Inbox()
            handle = await second.subscribe(SubscribeRequest(topic), again)
            await second.publish(topic, b"marker", {})
            await again.until(lambda: b"marker" in again.datas(), self.redelivery_timeout + 10, "marker")
            assert b"once" not in again.datas()
            await handle.close()
        finally:
            await second.close()
