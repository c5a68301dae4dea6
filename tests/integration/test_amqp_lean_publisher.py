"""The lean confirmed AMQP publisher behind ``pubsub.rabbitmq`` publishes, on a real RabbitMQ."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from pamqp import commands, frame

from pydapr.components._common.amqp import AMQPPublisher, PublishRefused
from pydapr.testing import require_server

URL = "amqp://guest:guest@127.0.0.1:5672/"


async def _queue_on_new_exchange(**arguments: object) -> tuple[object, str, object]:
    import aio_pika
    conn = await aio_pika.connect(URL)
    ch = await conn.channel()
    name = f"lean-{uuid.uuid4().hex[:8]}"
    ex = await ch.declare_exchange(name, aio_pika.ExchangeType.FANOUT, auto_delete=True)
    q = await ch.declare_queue(name, exclusive=True, arguments=arguments or None)
    await q.bind(ex)
    return conn, name, q


async def test_confirmed_messages_arrive_whole_with_their_properties() -> None:
    require_server("rabbitmq")
    conn, name, q = await _queue_on_new_exchange()
    pub = AMQPPublisher(URL)
    try:
        big = bytes(range(256)) * 2000  # 512 KB: split over several body frames
        props = commands.Basic.Properties(content_type="application/cloudevents+json",
                                          headers={"traceid": "t-1"}, delivery_mode=2,
                                          expiration="60000")
        await asyncio.gather(*(pub.publish(name, b"m%d" % i, props) for i in range(20)))
        await pub.publish(name, big, commands.Basic.Properties(delivery_mode=2))
        await pub.publish(name, b"premarshalled", props.marshal())  # properties given as bytes
        got = []
        for _ in range(22):
            m = await q.get(timeout=5)
            got.append(m)
            await m.ack()
        assert [m.body for m in got[:20]] == [b"m%d" % i for i in range(20)]  # in order
        first = got[0]
        assert first.content_type == "application/cloudevents+json"
        assert first.headers == {"traceid": "t-1"}
        assert first.delivery_mode == 2 and first.expiration == 60.0
        assert got[20].body == big
        assert got[21].body == b"premarshalled" and got[21].headers == {"traceid": "t-1"}
        assert got[21].content_type == "application/cloudevents+json" and got[21].expiration == 60.0
    finally:
        pub.close()
        await conn.close()


async def test_publish_nowait_sends_at_once_and_hands_back_the_confirm() -> None:
    require_server("rabbitmq")
    full_after_one = {"x-max-length": 1, "x-overflow": "reject-publish"}
    conn, name, q = await _queue_on_new_exchange(**full_after_one)
    pub = AMQPPublisher(URL)
    try:
        assert pub.publish_nowait(name, b"x", commands.Basic.Properties()) is None  # not connected
        await pub.publish(name, b"first", commands.Basic.Properties())
        confirm = pub.publish_nowait(name, b"second", commands.Basic.Properties())
        assert asyncio.isfuture(confirm)
        with pytest.raises(PublishRefused, match="nack"):  # the queue is full: the broker says no
            await asyncio.wait_for(confirm, 5)
        assert (await q.get(timeout=5)).body == b"first"
    finally:
        pub.close()
        await conn.close()


async def test_rabbitmq_component_publishes_without_waiting_once_the_exchange_is_known() -> None:
    require_server("rabbitmq")
    from pydapr.testing.conformance.pubsub import make_pubsub
    comp = await make_pubsub("pubsub.rabbitmq", {"connectionString": URL, "durable": "false"})
    topic = f"nowait-{uuid.uuid4().hex[:8]}"
    conn, _, _ = await _queue_on_new_exchange()
    try:
        assert comp.publish_nowait(topic, b"x", {}, "text/plain") is False  # exchange not declared
        await comp.publish(topic, b"first", {}, "text/plain")  # declares it
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(topic)
        confirm = comp.publish_nowait(topic, b"second", {}, "text/plain")
        assert asyncio.isfuture(confirm)
        assert await asyncio.wait_for(confirm, 5) is None
        assert comp.publish_nowait(topic, b"x", {"ttlInSeconds": "5"}, "text/plain") is False
        m = await q.get(timeout=5)
        assert m.body == b"second" and m.content_type == "text/plain" and m.delivery_mode == 2
    finally:
        await comp.close()
        await conn.close()


async def test_a_nack_fails_only_that_publish() -> None:
    require_server("rabbitmq")
    conn, name, _ = await _queue_on_new_exchange(**{"x-max-length": 0, "x-overflow": "reject-publish"})
    pub = AMQPPublisher(URL)
    try:
        with pytest.raises(PublishRefused, match="nack"):
            await pub.publish(name, b"no room", commands.Basic.Properties())
        assert pub.conn is not None and not pub.conn.closed  # a nack leaves the channel usable
    finally:
        pub.close()
        await conn.close()


async def test_a_closed_channel_fails_the_publish_and_the_next_one_reconnects() -> None:
    require_server("rabbitmq")
    conn, name, q = await _queue_on_new_exchange()
    pub = AMQPPublisher(URL)
    try:
        with pytest.raises(ConnectionError, match="closed the channel: 404"):
            await pub.publish(f"missing-{uuid.uuid4().hex}", b"x", commands.Basic.Properties())
        await pub.publish(name, b"after", commands.Basic.Properties())
        assert (await q.get(timeout=5)).body == b"after"
    finally:
        pub.close()
        await conn.close()


async def test_refused_credentials_and_ports_are_clear_errors() -> None:
    require_server("rabbitmq")
    with pytest.raises(ConnectionError, match="403 ACCESS_REFUSED") as refused:
        await AMQPPublisher("amqp://guest:wrong@127.0.0.1:5672/").publish("x", b"", commands.Basic.Properties())
    assert "wrong" not in str(refused.value)  # the password never reaches an error
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionError, match=f"cannot connect to RabbitMQ at 127.0.0.1:{port}"):
        await AMQPPublisher(f"amqp://127.0.0.1:{port}/").publish("x", b"", commands.Basic.Properties())
    with pytest.raises(ValueError, match="amqp://"):
        AMQPPublisher("amqps://127.0.0.1/")


async def _broker_that_never_confirms() -> tuple[asyncio.base_events.Server, int]:
    """Completes the handshake, then reads publishes and confirms none."""
    replies = {commands.Connection.StartOk: None, commands.Connection.TuneOk: None,
               commands.Connection.Open: commands.Connection.OpenOk(),
               commands.Channel.Open: commands.Channel.OpenOk(),
               commands.Confirm.Select: commands.Confirm.SelectOk()}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(8)  # protocol header
        writer.write(frame.marshal(commands.Connection.Start(), 0))
        buf = b""
        while data := await reader.read(65536):
            buf += data
            while len(buf) >= 8:
                try:
                    used, channel, value = frame.unmarshal(buf)
                except Exception:
                    break
                buf = buf[used:]
                if type(value) is commands.Connection.StartOk:
                    writer.write(frame.marshal(commands.Connection.Tune(0, 131072, 0), 0))
                elif replies.get(type(value)) is not None:
                    writer.write(frame.marshal(replies[type(value)], channel))
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_publishes_without_a_confirm_fail_together_after_the_timeout() -> None:
    server, port = await _broker_that_never_confirms()
    pub = AMQPPublisher(f"amqp://127.0.0.1:{port}/", timeout=0.3)
    try:
        start = time.monotonic()
        first = asyncio.ensure_future(pub.publish("x", b"1", commands.Basic.Properties()))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(pub.publish("x", b"2", commands.Basic.Properties()))
        for fut in (first, second):
            with pytest.raises(ConnectionError, match="did not confirm within 0.3s"):
                await fut
        assert 0.25 < time.monotonic() - start < 1.0  # one watchdog: the oldest decides
    finally:
        pub.close()
        server.close()
