"""Which subscriptions run: declarative, programmatic and streaming, each checked against scopes.

A subscription the component's ``subscriptionScopes``/``allowedTopics``/
``protectedTopics`` deny is never registered with the broker (security spec
1.5). Declarative and programmatic subscriptions are read once, when the
app's port is open; a second subscription to the same pub/sub and topic is
refused with a warning, as Dapr refuses duplicates.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydapr.errors import ConfigError
from pydapr.kinds.pubsub import DEFAULT_IN_FLIGHT, Handler, SubscribeRequest, SubscriptionHandle

from .delivery import Delivery
from .subscriptions import Subscription, discover, from_resource

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

    from .publish import Publisher

__all__ = ["Subscriber", "SubscribeRefused"]

log = logging.getLogger("pydapr.pubsub")


class SubscribeRefused(Exception):
    """The subscription cannot start (unknown pub/sub, scopes, broker error); the text says why."""


class Subscriber:
    def __init__(self, runtime: Runtime, publisher: Publisher) -> None:
        self.rt = runtime
        self.publisher = publisher
        self.active: list[tuple[Subscription, SubscriptionHandle]] = []

    async def start(self) -> None:
        channel = self.rt.app_channel
        subs: list[Subscription] = []
        for res in self.rt.resources.subscriptions:
            try:
                subs.append(from_resource(res, http=channel is None or not channel.is_grpc))
            except ConfigError as exc:
                log.error("%s", exc)
        if channel is None:
            if subs:
                log.warning("%d declarative subscription(s) not started: no --app-port to deliver to",
                            len(subs))
            return
        subs += await discover(channel, self.rt.app_id)
        for sub in subs:
            if any((s.pubsub, s.topic) == (sub.pubsub, sub.topic) for s, _ in self.active):
                log.warning("duplicate subscription to %s/%s ignored", sub.pubsub, sub.topic)
                continue
            try:
                await self.add(sub, self.handler(sub))
            except SubscribeRefused as exc:
                log.warning("%s", exc)

    def handler(self, sub: Subscription) -> Handler:
        policy = self.publisher.resiliency.for_component(sub.pubsub, "inbound", "pubsub")
        delivery = Delivery(sub, self.rt.component("pubsub", sub.pubsub), self.rt.app_channel,  # type: ignore[arg-type]
                            policy, self.publisher)
        if sub.bulk.enabled:
            from .bulk import BulkDelivery
            return BulkDelivery(delivery)
        return delivery

    async def add(self, sub: Subscription, handler: Handler) -> SubscriptionHandle:
        """Check and register ``sub`` with its broker.

        :raises SubscribeRefused: naming the reason; nothing is registered then.
        """
        comp = self.rt.component("pubsub", sub.pubsub)
        if comp is None:
            raise SubscribeRefused(f"subscription to topic '{sub.topic}' on pubsub '{sub.pubsub}': "
                                   f"pubsub {sub.pubsub} is not found")
        if not sub.topic:
            raise SubscribeRefused(f"subscription on pubsub '{sub.pubsub}': topic is empty")
        if not self.publisher.target(sub.pubsub).scopes.may_subscribe(sub.topic):
            raise SubscribeRefused(f"subscription to topic '{sub.topic}' on pubsub '{sub.pubsub}' "
                                   "is not allowed")
        in_flight = DEFAULT_IN_FLIGHT
        if sub.bulk.enabled:
            in_flight = max(in_flight, sub.bulk.max_messages)
        request = SubscribeRequest(sub.topic, dict(sub.metadata), in_flight)
        try:
            handle = await comp.subscribe(request, handler)
        except Exception as exc:
            raise SubscribeRefused(f"subscription to topic '{sub.topic}' on pubsub '{sub.pubsub}' "
                                   f"failed: {exc or type(exc).__name__}") from exc
        self.active.append((sub, handle))
        log.info("subscribed to %s/%s (%s)", sub.pubsub, sub.topic, sub.type.lower())
        return handle

    async def remove(self, handle: SubscriptionHandle) -> None:
        self.active = [(s, h) for s, h in self.active if h is not handle]
        await handle.close()

    async def stop(self) -> None:
        active, self.active = self.active, []
        for _, handle in reversed(active):
            try:
                await handle.close()
            except Exception as exc:
                log.warning("closing a subscription: %s", exc)

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s, _ in self.active]
