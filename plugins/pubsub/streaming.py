"""Streaming subscriptions: ``SubscribeTopicEventsAlpha1`` (spec 3.12).

The client sends ``initial_request`` first; the sidecar registers the
subscription (scopes apply) and answers exactly one ``initial_response``,
then pushes ``event_message``s and waits for the matching
``event_processed``. A message whose answer never comes (the stream ended)
is not acknowledged, so the broker delivers it again.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any, AsyncIterator

import grpc

from pydapr.kinds.pubsub import Message
from pydapr.server.grpc import abort

from .delivery import DROP, RETRY, SUCCESS, Delivery, DeliveryFailed, PoisonMessage, cloud_event_of, grpc_event
from .manager import SubscribeRefused
from .subscriptions import Rule, Subscription

if TYPE_CHECKING:
    from .manager import Subscriber
    from .publish import Publisher

__all__ = ["StreamingSubscriptions"]

log = logging.getLogger("pydapr.pubsub")

_STATUS = {0: SUCCESS, 1: RETRY, 2: DROP}


class _StreamHandler:
    """Hands messages to one stream and waits for the client's verdict."""

    def __init__(self, sub: Subscription, delivery: Delivery) -> None:
        self.sub = sub
        self.delivery = delivery
        self.out: asyncio.Queue = asyncio.Queue()
        self.pending: dict[str, deque[asyncio.Future]] = defaultdict(deque)
        self.closed = False

    async def __call__(self, msg: Message) -> None:
        from dapr.proto.runtime.v1 import pubsub_pb2 as pb
        if self.closed:
            raise DeliveryFailed("the stream is closed")
        try:
            ce, _ = cloud_event_of(msg, self.sub)
        except PoisonMessage as exc:
            await self.delivery.give_up(msg, str(exc))
            return
        event = grpc_event(ce, self.sub, "/")
        fut = asyncio.get_running_loop().create_future()
        self.pending[event.id].append(fut)
        await self.out.put(pb.SubscribeTopicEventsResponseAlpha1(event_message=event))
        status = await fut
        if status == RETRY:
            await self.delivery.give_up(msg, "the subscriber asked to retry")
        elif status == DROP and self.sub.dead_letter_topic:
            await self.delivery.dead_letter(msg)

    def processed(self, event_id: str, status: int) -> None:
        queue = self.pending.get(event_id)
        if not queue:
            log.debug("event_processed for unknown event %s", event_id)
            return
        fut = queue.popleft()
        if not queue:
            del self.pending[event_id]
        if not fut.done():
            fut.set_result(_STATUS.get(status, RETRY))

    def close(self) -> None:
        self.closed = True
        for queue in self.pending.values():
            for fut in queue:
                if not fut.done():
                    fut.set_exception(DeliveryFailed("the stream ended before the event was processed"))
        self.pending.clear()


class StreamingSubscriptions:
    def __init__(self, subscriber: Subscriber, publisher: Publisher) -> None:
        self.subscriber = subscriber
        self.publisher = publisher

    async def handle(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        from dapr.proto.runtime.v1 import pubsub_pb2 as pb
        from pydapr.errors import APIError
        it = requests.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("subscribe_topic_events_request_type") != "initial_request":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "initial request is required")
        init = first.initial_request
        if not init.pubsub_name or not init.topic:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "pubsubName and topic are required in the initial request")
        sub = Subscription(init.pubsub_name, init.topic, [Rule("", "/")], dict(init.metadata),
                           init.dead_letter_topic if init.HasField("dead_letter_topic") else "",
                           type="STREAMING")
        rt = self.subscriber.rt
        comp = rt.component("pubsub", sub.pubsub)
        policy = self.publisher.resiliency.for_component(sub.pubsub, "inbound", "pubsub")
        handler = _StreamHandler(sub, Delivery(sub, comp, _NoChannel(), policy, self.publisher))  # type: ignore[arg-type]
        try:
            handle = await self.subscriber.add(sub, handler)
        except SubscribeRefused as exc:
            await abort(context, APIError("ERR_PUBSUB_FORBIDDEN" if "not allowed" in str(exc)
                                          else "ERR_PUBSUB_NOT_FOUND",
                                          f"failed to create subscription for {sub.pubsub}: {exc}"))
            return
        reader = asyncio.ensure_future(self._read(it, handler))
        try:
            yield pb.SubscribeTopicEventsResponseAlpha1(
                initial_response=pb.SubscribeTopicEventsResponseInitialAlpha1())
            while True:
                get = asyncio.ensure_future(handler.out.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                yield get.result()
        finally:
            reader.cancel()
            handler.close()
            await self.subscriber.remove(handle)

    @staticmethod
    async def _read(it: Any, handler: _StreamHandler) -> None:
        try:
            async for req in it:
                if req.WhichOneof("subscribe_topic_events_request_type") == "event_processed":
                    ep = req.event_processed
                    handler.processed(ep.id, ep.status.status)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass


class _NoChannel:
    """Streaming subscriptions do not call the app channel; only dead-lettering is used."""

    is_grpc = True
