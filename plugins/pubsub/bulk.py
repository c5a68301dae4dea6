"""Bulk subscribe (spec 3.11): batch messages, deliver a batch in one call, settle each entry.

The component hands messages one by one with enough in flight to fill a
batch; a batch goes out when it holds ``maxMessagesCount`` messages or
``maxAwaitDurationMs`` after its first one. Each message then waits for its
own entry's status, so acknowledgement stays per message: SUCCESS acks,
DROP acks (to the dead-letter topic if any), RETRY and anything missing
from the answer are delivered again.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from pydapr.ids import new_uuid
from pydapr.kinds.pubsub import Message

from .delivery import (DROP, RETRY, SUCCESS, Delivery, DeliveryFailed, PoisonMessage, _expired,
                       cloud_event_of, grpc_event)
from .envelope import CE_CONTENT_TYPE
from .subscriptions import RoutingError

__all__ = ["BulkDelivery"]

log = logging.getLogger("pydapr.pubsub")

_Item = tuple[str, Message, dict[str, Any], asyncio.Future]


class BulkDelivery:
    def __init__(self, delivery: Delivery) -> None:
        self.d = delivery
        self.sub = delivery.sub
        self.batch: dict[str, list[_Item]] = {}
        self.count = 0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task] = set()

    async def __call__(self, msg: Message) -> None:
        try:
            ce, _ = cloud_event_of(msg, self.sub)
            path = None if _expired(ce) else self.sub.route(ce)
        except (PoisonMessage, RoutingError) as exc:
            await self.d.give_up(msg, str(exc))
            return
        if path is None:
            if self.sub.dead_letter_topic:
                await self.d.dead_letter(msg)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self.batch.setdefault(path, []).append((new_uuid(), msg, ce, fut))
        self.count += 1
        if self.count >= self.sub.bulk.max_messages:
            self._flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.sub.bulk.max_await_ms / 1000, self._flush)
        outcome = await fut
        if outcome == RETRY:
            await self.d.give_up(msg, "the app asked to retry this entry")
        elif outcome == DROP and self.sub.dead_letter_topic:
            await self.d.dead_letter(msg)

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.batch, self.count = self.batch, {}, 0
        for path, items in batch.items():
            task = asyncio.ensure_future(self._send(path, items))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self, path: str, items: list[_Item]) -> None:
        try:
            if self.d.plain:
                statuses = await self._call(path, items)
            else:
                statuses = await self.d.policy.run(lambda: self._call(path, items))
        except Exception as exc:
            log.warning("bulk delivery on %s/%s failed: %s", self.sub.pubsub, self.sub.topic, exc)
            statuses = {}
        for eid, _, _, fut in items:
            if not fut.done():
                fut.set_result(statuses.get(eid, RETRY))

    async def _call(self, path: str, items: list[_Item]) -> dict[str, str]:
        if self.d.grpc:
            return await self._grpc(path, items)
        body = orjson.dumps({
            "id": new_uuid(), "type": "com.dapr.event.sent.bulk", "topic": self.sub.topic,
            "pubsubname": self.sub.pubsub, "metadata": dict(self.sub.metadata),
            "entries": [{"entryId": eid, "event": ce, "metadata": msg.metadata,
                         "contentType": CE_CONTENT_TYPE} for eid, msg, ce, _ in items]})
        resp = await self.d.channel.call_http(
            "POST", path, [("content-type", "application/json"), ("pubsubname", self.sub.pubsub)], body)
        if resp.status == 404:
            return {eid: DROP for eid, *_ in items}
        if not 200 <= resp.status < 300:
            raise DeliveryFailed(f"the app answered HTTP {resp.status}", http_status=resp.status)
        try:
            doc = orjson.loads(resp.body)
            return {str(s["entryId"]): _status(s.get("status")) for s in doc.get("statuses") or ()}
        except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
            return {}

    async def _grpc(self, path: str, items: list[_Item]) -> dict[str, str]:
        import grpc
        from dapr.proto.runtime.v1 import appcallback_pb2 as cb
        req = cb.TopicEventBulkRequest(id=new_uuid(), metadata=dict(self.sub.metadata),
                                       topic=self.sub.topic, pubsub_name=self.sub.pubsub,
                                       type="com.dapr.event.sent.bulk", path=path)
        for eid, _, ce, _ in items:
            ev = grpc_event(ce, self.sub, path)
            req.entries.add(entry_id=eid, content_type=CE_CONTENT_TYPE, cloud_event=cb.TopicEventCERequest(
                id=ev.id, source=ev.source, type=ev.type, spec_version=ev.spec_version,
                data_content_type=ev.data_content_type, data=ev.data, extensions=ev.extensions))
        md = self.d.channel.grpc_metadata()
        try:
            resp = await self.d.channel.stub().OnBulkTopicEvent(req, metadata=md)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise DeliveryFailed(f"OnBulkTopicEvent failed: {exc.code().name}",
                                     grpc_status=exc.code().value[0]) from None
            try:
                resp = await self.d.channel.stub("AppCallbackAlpha").OnBulkTopicEventAlpha1(req, metadata=md)
            except grpc.aio.AioRpcError as exc2:
                if exc2.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return {eid: DROP for eid, *_ in items}
                raise DeliveryFailed(f"OnBulkTopicEventAlpha1 failed: {exc2.code().name}",
                                     grpc_status=exc2.code().value[0]) from None
        names = {0: SUCCESS, 1: RETRY, 2: DROP}
        return {s.entry_id: names.get(s.status, RETRY) for s in resp.statuses}


def _status(value: Any) -> str:
    return value if value in (SUCCESS, DROP) else RETRY
