"""``pubsub.mqtt3``: MQTT 3.1.1 at QoS 1 (aiomqtt over paho), e.g. Mosquitto.

Each subscription has its own client with a persistent session (client id
``<consumerID>-<topic>``, ``cleanSession`` false), so the broker keeps
messages for it while the sidecar is away. Acknowledgement is manual: the
PUBACK goes out only after the app accepted the message, so a message the
sidecar died holding is redelivered on reconnect. MQTT has no negative
acknowledgement: a failed delivery is retried in the sidecar after
``redeliverInterval`` until it succeeds. MQTT 3 carries no message
metadata or content type.
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydapr import hookimpl
from pydapr.kinds.pubsub import Handler, Message, PubSub, SubscribeRequest, SubscriptionHandle, in_flight
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

from ._inflight import InFlight

__all__ = ["MQTTPubSub", "MQTTMetadata"]

log = logging.getLogger("pydapr.pubsub.mqtt")
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class MQTTMetadata:
    url: str = meta("tcp://localhost:1883", name=("url", "brokerURL"), sensitive=True,
                    doc="tcp://[user:password@]host:port")
    qos: int = meta(1, doc="0, 1 or 2; at-least-once needs 1 or more")
    retain: bool = meta(False)
    clean_session: bool = meta(False, doc="true drops the broker's queue for this consumer")
    consumer_id: str = meta("", name="consumerID", doc="client id prefix; default the app id")
    redeliver_interval: Duration = meta(Duration(0.2), doc="wait before retrying a failed message")
    max_in_flight: int = meta(0, name=("maxInFlight", "maxConcurrentHandlers"),
                              doc="messages handed to the app at once per subscription (default 16)")


class MQTTPubSub(PubSub):
    metadata_type = MQTTMetadata

    async def init(self, metadata: MQTTMetadata) -> None:
        self.md = metadata
        self.group = metadata.consumer_id or self.info.app_id or "default"
        u = urlsplit(metadata.url if "://" in metadata.url else f"tcp://{metadata.url}")
        self.conn = {"hostname": u.hostname or "localhost", "port": u.port or 1883,
                     "username": u.username, "password": u.password}
        self.publisher = self._client(f"{self.group}-pub-{uuid.uuid4().hex[:8]}", clean=True)
        await self.publisher.__aenter__()
        self.lock = asyncio.Lock()

    def _client(self, identifier: str, clean: bool) -> Any:
        import aiomqtt
        return aiomqtt.Client(**self.conn, identifier=identifier[:128], clean_session=clean,
                              max_inflight_messages=64, timeout=10)

    async def close(self) -> None:
        await self.publisher.__aexit__(None, None, None)

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        import aiomqtt
        try:
            await self.publisher.publish(topic, data, qos=self.md.qos, retain=self.md.retain)
        except aiomqtt.MqttError:
            async with self.lock:  # reconnect once, then publish again
                await self.publisher.__aexit__(None, None, None)
                self.publisher = self._client(f"{self.group}-pub-{uuid.uuid4().hex[:8]}", clean=True)
                await self.publisher.__aenter__()
            await self.publisher.publish(topic, data, qos=self.md.qos, retain=self.md.retain)

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        group = request.metadata.get("consumerID") or self.group
        client_id = _BAD_ID.sub("_", f"{group}-{request.topic}")
        ready = asyncio.get_running_loop().create_future()
        flight = InFlight(in_flight(request, self.md.max_in_flight))
        task = asyncio.ensure_future(self._run(client_id, request.topic, handler, flight, ready))
        done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises why the first connection failed

        async def stop() -> None:
            flight.cancel()
        return SubscriptionHandle(task, on_close=stop)

    async def _run(self, client_id: str, topic: str, handler: Handler, flight: InFlight,
                   ready: asyncio.Future) -> None:
        import aiomqtt
        while True:
            try:
                async with self._client(client_id, clean=self.md.clean_session) as client:
                    client._client.manual_ack_set(True)  # PUBACK only after the app accepted it
                    await client.subscribe(topic, qos=self.md.qos)
                    if not ready.done():
                        ready.set_result(None)
                    async for m in client.messages:
                        await flight.free()
                        msg = Message(topic, bytes(m.payload), {}, "", str(m.mid))
                        if flight.ordered:
                            await self._deliver(client, m, msg, handler)
                        else:
                            flight.start(self._deliver(client, m, msg, handler))
            except aiomqtt.MqttError as exc:
                if not ready.done():
                    raise
                log.debug("mqtt subscription %s lost its connection (%s); reconnecting", topic, exc)
                await asyncio.sleep(0.5)

    async def _deliver(self, client: Any, m: Any, msg: Message, handler: Handler) -> None:
        while True:
            try:
                await handler(msg)
                break
            except Exception:
                await asyncio.sleep(self.md.redeliver_interval)
        if m.qos > 0:
            client._client.ack(m.mid, m.qos)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("pubsub.mqtt3", "v1", MQTTPubSub)]
