"""Delivering one broker message to the app (spec 3.8 to 3.10), with retries and dead letters.

The component calls :class:`Delivery` for each message. Returning means
"acknowledge" (the app accepted it, it was dropped on purpose, or it went to
the dead-letter topic); raising means "deliver again". Inbound resiliency
policies (timeouts, retries, circuit breaker of the pub/sub component) wrap
each attempt; after the last failed attempt the message goes to the
subscription's ``deadLetterTopic`` when it has one.
"""
from __future__ import annotations

import base64
import logging
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from pydapr.ids import new_uuid
from pydapr.kinds.pubsub import Message, PubSub
from pydapr.resiliency import Policy

from .envelope import CE_CONTENT_TYPE, is_json
from .subscriptions import RoutingError, Subscription

if TYPE_CHECKING:
    from pydapr.server.appchannel import AppChannel

    from .publish import Publisher

__all__ = ["Delivery", "DeliveryFailed", "SUCCESS", "RETRY", "DROP", "app_status", "cloud_event_of",
           "grpc_event"]

log = logging.getLogger("pydapr.pubsub")

SUCCESS, RETRY, DROP = "SUCCESS", "RETRY", "DROP"
_HEADER_OK = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_SKIP_HEADERS = frozenset({"content-type", "content-length", "host", "dapr-api-token", "connection",
                           "transfer-encoding"})
_GRPC_KEY = re.compile(r"^[0-9a-z_.-]+$")
_CORE = frozenset({"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"})


class DeliveryFailed(Exception):
    """The app did not accept the message; ``http_status``/``grpc_status`` feed retry matching."""

    def __init__(self, message: str, http_status: int | None = None,
                 grpc_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.grpc_status = grpc_status


class PoisonMessage(Exception):
    """The message can never be delivered as it is (not JSON, a rule failed)."""


def app_status(body: bytes) -> str:
    """The outcome of a 2xx answer from the app's body (spec 3.8)."""
    if not body or body.lstrip()[:1] != b"{":
        return SUCCESS
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return SUCCESS
    status = doc.get("status") if isinstance(doc, dict) else None
    if status in (None, "", SUCCESS):
        return SUCCESS
    if status in (RETRY, DROP):
        return status
    raise DeliveryFailed(f"the app answered an unknown status {str(status)[:64]!r}")


def cloud_event_of(msg: Message, sub: Subscription) -> tuple[dict[str, Any], bytes]:
    """The CloudEvent as a dict, and the bytes to send an HTTP app."""
    if sub.raw_payload:
        ce = {"id": new_uuid(), "specversion": "1.0", "datacontenttype": "application/octet-stream",
              "source": "Dapr", "type": "com.dapr.event.sent", "topic": sub.topic,
              "pubsubname": sub.pubsub, "data_base64": base64.b64encode(msg.data).decode()}
        for key in ("traceid", "traceparent", "tracestate"):
            if key in msg.metadata:
                ce[key] = msg.metadata[key]
        return ce, orjson.dumps(ce)
    try:
        ce = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise PoisonMessage("the message is not a CloudEvent (not JSON); subscribe with "
                            "rawPayload=true to receive raw messages") from None
    if not isinstance(ce, dict):
        raise PoisonMessage("the message is not a CloudEvent (not a JSON object)")
    return ce, msg.data


def _expired(ce: dict[str, Any]) -> bool:
    exp = ce.get("expiration")
    if not isinstance(exp, str):
        return False
    try:
        when = datetime.fromisoformat(exp)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when < datetime.now(timezone.utc)


def grpc_event(ce: dict[str, Any], sub: Subscription, path: str) -> Any:
    """A ``TopicEventRequest`` for a gRPC app (spec 3.10)."""
    from dapr.proto.runtime.v1 import appcallback_pb2 as cb
    from google.protobuf import struct_pb2
    ct = str(ce.get("datacontenttype") or "")
    data = b""
    if ce.get("data_base64") is not None:
        data = base64.b64decode(str(ce["data_base64"]))
    elif ce.get("data") is not None:
        value = ce["data"]
        media = ct.split(";", 1)[0].strip().lower()
        if isinstance(value, str) and (media.startswith("text/") or media == "application/xml"
                                       or not (is_json(ct) or media == CE_CONTENT_TYPE)):
            data = value.encode()
        else:
            data = orjson.dumps(value)
    ext = struct_pb2.Struct()
    extra = {k: v for k, v in ce.items() if k not in _CORE}
    if extra:
        ext.update(orjson.loads(orjson.dumps(extra)))
    return cb.TopicEventRequest(id=str(ce.get("id", "")), source=str(ce.get("source", "")),
                                type=str(ce.get("type", "")), spec_version=str(ce.get("specversion", "")),
                                data_content_type=ct, data=data, topic=sub.topic,
                                pubsub_name=sub.pubsub, path=path, extensions=ext)


class Delivery:
    """The handler a component calls for each message of one subscription."""

    def __init__(self, sub: Subscription, comp: PubSub, channel: AppChannel, policy: Policy,
                 publisher: Publisher) -> None:
        self.sub, self.comp, self.channel, self.policy = sub, comp, channel, policy
        self.publisher = publisher
        self.plain = policy.retry is None and policy.timeout is None and policy.breaker is None
        self.grpc = channel.is_grpc

    async def __call__(self, msg: Message) -> None:
        sub = self.sub
        try:
            ce, body = cloud_event_of(msg, sub)
            path = None if _expired(ce) else sub.route(ce)
        except (PoisonMessage, RoutingError) as exc:
            await self.give_up(msg, str(exc))
            return
        if path is None:
            if sub.dead_letter_topic:
                await self.dead_letter(msg)
            return
        try:
            if self.plain:
                outcome = await self.attempt(msg, ce, body, path)
            else:
                outcome = await self.policy.run(lambda: self.attempt(msg, ce, body, path))
        except Exception as exc:
            await self.give_up(msg, f"{type(exc).__name__}: {exc}")
            return
        if outcome == DROP:
            log.warning("app dropped message %s on %s/%s", ce.get("id", ""), sub.pubsub, sub.topic)
            if sub.dead_letter_topic:
                await self.dead_letter(msg)

    async def attempt(self, msg: Message, ce: dict[str, Any], body: bytes, path: str) -> str:
        if self.grpc:
            return await self._grpc(msg, ce, path)
        headers = [("content-type", CE_CONTENT_TYPE), ("pubsubname", self.sub.pubsub)]
        for k, v in msg.metadata.items():
            if k.lower() not in _SKIP_HEADERS and _HEADER_OK.match(k):
                headers.append((k, v))
        tp = ce.get("traceparent") or ce.get("traceid")
        if tp:
            headers.append(("traceparent", str(tp)))
            if ce.get("tracestate"):
                headers.append(("tracestate", str(ce["tracestate"])))
        resp = await self.channel.call_http("POST", path, headers, body)
        if 200 <= resp.status < 300:
            outcome = app_status(resp.body)
            if outcome == RETRY:
                raise DeliveryFailed("the app asked to retry", http_status=resp.status)
            return outcome
        if resp.status == 404:
            log.error("app answered 404 for %s on %s/%s; dropping the message", path,
                      self.sub.pubsub, self.sub.topic)
            return DROP
        raise DeliveryFailed(f"the app answered HTTP {resp.status}", http_status=resp.status)

    async def _grpc(self, msg: Message, ce: dict[str, Any], path: str) -> str:
        import grpc
        md = [(k.lower(), v) for k, v in msg.metadata.items()
              if _GRPC_KEY.match(k.lower()) and not k.lower().endswith("-bin") and v.isascii()
              and k.lower() not in _SKIP_HEADERS]
        try:
            resp = await self.channel.stub().OnTopicEvent(grpc_event(ce, self.sub, path),
                                                          metadata=self.channel.grpc_metadata(md))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return DROP
            raise DeliveryFailed(f"OnTopicEvent failed: {exc.code().name}",
                                 grpc_status=exc.code().value[0]) from None
        if resp.status == 1:
            raise DeliveryFailed("the app asked to retry", grpc_status=0)
        return DROP if resp.status == 2 else SUCCESS

    async def give_up(self, msg: Message, why: str) -> None:
        """Last attempt failed: to the dead-letter topic if there is one, else back to the broker."""
        if self.sub.dead_letter_topic:
            log.warning("delivery on %s/%s failed (%s); sending to dead-letter topic %s",
                        self.sub.pubsub, self.sub.topic, why, self.sub.dead_letter_topic)
            await self.dead_letter(msg)
            return
        raise DeliveryFailed(f"delivery on {self.sub.pubsub}/{self.sub.topic} failed: {why}")

    async def dead_letter(self, msg: Message) -> None:
        """Publish the original message, unchanged, to the dead-letter topic (same checks)."""
        topic = self.sub.dead_letter_topic
        comp = self.publisher.check(self.sub.pubsub, topic)
        await comp.publish(topic, msg.data, dict(msg.metadata), msg.content_type)
