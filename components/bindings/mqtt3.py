"""``bindings.mqtt3``: publish to and subscribe to an MQTT 3.1.1 topic.

Output ``create`` publishes the data to ``topic`` (request metadata ``topic``
and ``retain`` override the component's). Input subscribes to ``topic`` (MQTT
wildcards allowed) and delivers each message with metadata ``topic``. The
client acknowledges a QoS 1 message when it arrives (MQTT has no negative
acknowledgement), so a delivery the app refuses is retried in the sidecar up
to ``backOffMaxRetries`` times (``-1``: until it succeeds) before it is
dropped with a warning. The connection is re-established when it drops.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydapr import hookimpl
from pydapr.errors import ComponentError, ConfigError
from pydapr.kinds.bindings import (BOTH, BindingEvent, BindingHandler, InputBinding,
                                   InvokeRequest, InvokeResponse, OutputBinding, metadata_value)
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["MQTTBinding", "MQTTBindingMetadata"]

log = logging.getLogger("pydapr.bindings.mqtt3")

_TLS_SCHEMES = {"ssl", "tls", "mqtts", "tcps"}


@dataclass(frozen=True)
class MQTTBindingMetadata:
    url: str = meta(sensitive=True, doc="broker URL: tcp://, mqtt://, ssl:// or mqtts://")
    topic: str = meta(doc="topic to publish to and subscribe to")
    consumer_id: str = meta("", name=("consumerID", "consumerId"),
                            doc="MQTT client id (default: the app id)")
    qos: int = meta(1, doc="quality of service, 0 to 2")
    retain: bool = meta(False, doc="publish retained messages")
    clean_session: bool = meta(False, doc="start without the broker's stored session")
    back_off_max_retries: int = meta(0, doc="retries of a refused delivery (-1: no limit)")
    ca_cert: str = meta("", name=("caCert",), doc="CA to verify the broker (PEM)")


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "y", "on")


class MQTTBinding(InputBinding, OutputBinding):
    metadata_type = MQTTBindingMetadata
    features = BOTH

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.md: MQTTBindingMetadata | None = None
        self._client: Any = None
        self._connected = asyncio.Event()
        self._reading = asyncio.Event()
        self._handler: BindingHandler | None = None
        self._tasks: list[asyncio.Task] = []

    async def init(self, metadata: MQTTBindingMetadata) -> None:
        parts = urlsplit(metadata.url)
        if parts.scheme not in ({"tcp", "mqtt"} | _TLS_SCHEMES) or not parts.hostname:
            raise ConfigError("url must be tcp://host:port, mqtt://, ssl:// or mqtts:// "
                              "with a host")
        if not 0 <= metadata.qos <= 2:
            raise ConfigError("qos must be 0, 1 or 2")
        if not metadata.topic:
            raise ConfigError("topic is required")
        self.md = metadata
        self._tasks.append(asyncio.get_running_loop().create_task(self._run()))
        try:
            await asyncio.wait_for(self._connected.wait(), 10.0)
        except asyncio.TimeoutError:
            await self.close()
            raise ComponentError("cannot connect to the MQTT broker") from None

    def _new_client(self) -> Any:
        import aiomqtt
        md, parts = self.md, urlsplit(self.md.url)
        tls = None
        if parts.scheme in _TLS_SCHEMES:
            tls = ssl.create_default_context()
            if md.ca_cert:
                tls.load_verify_locations(cadata=md.ca_cert)
        port = parts.port or (8883 if tls else 1883)
        return aiomqtt.Client(parts.hostname, port, username=parts.username,
                              password=parts.password, identifier=md.consumer_id or self.info.app_id
                              or self.info.name, clean_session=md.clean_session, tls_context=tls,
                              max_queued_incoming_messages=1000)

    async def _run(self) -> None:
        """Keep one connection up; while a handler is set, subscribe and deliver."""
        import aiomqtt
        while True:
            try:
                async with self._new_client() as client:
                    self._client = client
                    self._connected.set()
                    if self._handler is not None:
                        await client.subscribe(self.md.topic, qos=self.md.qos)
                    # iterating also notices a dropped connection while nothing is subscribed
                    async for msg in client.messages:
                        await self._deliver(msg)
            except asyncio.CancelledError:
                raise
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("%s: MQTT connection lost (%s); reconnecting", self.info.name, exc)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(1.0)

    async def _deliver(self, msg: Any) -> None:
        if self._handler is None:  # a stored session resumed before the app was asked
            try:
                await asyncio.wait_for(self._reading.wait(), 30.0)
            except asyncio.TimeoutError:
                log.warning("%s: dropped a message on %s: no reader", self.info.name, msg.topic)
                return
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload or "").encode()
        event = BindingEvent(payload, {"topic": str(msg.topic)})
        attempt, limit = 0, self.md.back_off_max_retries
        while True:
            try:
                await self._handler(event)
                return
            except Exception as exc:
                attempt += 1
                if limit >= 0 and attempt > limit:
                    log.warning("%s: dropped a message on %s the app refused: %s",
                                self.info.name, msg.topic, exc)
                    return
                await asyncio.sleep(min(0.1 * 2 ** attempt, 5.0))

    async def read(self, handler: BindingHandler) -> None:
        self._handler = handler
        self._reading.set()
        if self._client is not None:  # else the next connection subscribes
            try:
                await self._client.subscribe(self.md.topic, qos=self.md.qos)
            except Exception as exc:
                log.warning("%s: subscribing to %s failed (%s); retried on reconnect",
                            self.info.name, self.md.topic, exc)

    async def close(self) -> None:
        await self.stop_tasks(self._tasks)

    def operations(self) -> list[str]:
        return ["create"]

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        topic = metadata_value(request.metadata, "topic") or self.md.topic
        if any(c in topic for c in "#+"):
            raise ComponentError(f"cannot publish to {topic!r}: wildcards are for subscriptions")
        retain_text = metadata_value(request.metadata, "retain")
        retain = _truthy(retain_text) if retain_text else self.md.retain
        try:
            await asyncio.wait_for(self._connected.wait(), 5.0)
            await self._client.publish(topic, request.data, qos=self.md.qos, retain=retain)
        except asyncio.TimeoutError:
            raise ComponentError("not connected to the MQTT broker") from None
        except Exception as exc:
            raise ComponentError(f"mqtt: {exc}") from None
        return None


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.mqtt3", "v1", MQTTBinding)]
