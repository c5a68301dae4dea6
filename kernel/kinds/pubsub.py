"""The ``pubsub`` kind: publish bytes to a topic, subscribe with an async handler.

The handler contract carries at-least-once delivery: a component acknowledges
a message to its broker only after the handler *returned*; a handler that
raises means "not processed", and the component must make the broker deliver
the message again (nack, requeue, leave pending...). The building block
decides what "processed" means (app accepted it, or it went to a dead-letter
topic), so components never look inside the bytes they carry.
"""
from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import Component

__all__ = ["PubSub", "Message", "SubscribeRequest", "Handler", "BulkEntry", "BulkFailure",
           "SubscriptionHandle", "DEFAULT_IN_FLIGHT", "in_flight"]

#: messages a subscription has in flight at once unless told otherwise (never one at a time)
DEFAULT_IN_FLIGHT = 16


@dataclass(slots=True)
class Message:
    """One message as read from the broker.

    :param data: the bytes published (a CloudEvent JSON document unless raw).
    :param metadata: broker metadata (headers, user properties); delivered to the app as headers.
    """

    topic: str
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    id: str = ""


@dataclass(slots=True)
class BulkEntry:
    entry_id: str
    data: bytes
    content_type: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BulkFailure:
    entry_id: str
    error: str


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """What to subscribe to.

    :param metadata: the subscription's metadata (``rawPayload``, ``consumerID`` overrides...).
    :param max_in_flight: how many messages the component may hand to the handler at once.
    """

    topic: str
    metadata: dict[str, str] = field(default_factory=dict)
    max_in_flight: int = DEFAULT_IN_FLIGHT


Handler = Callable[[Message], Awaitable[None]]


class SubscriptionHandle:
    """Returned by :meth:`PubSub.subscribe`; :meth:`close` stops delivery (in-flight ones finish).

    Components pass the tasks that do the delivery; closing cancels them.
    """

    def __init__(self, *tasks: asyncio.Task, on_close: Callable[[], Awaitable[None]] | None = None
                 ) -> None:
        self.tasks = list(tasks)
        self._on_close = on_close
        self.closed = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # cancel again while needed: some client libraries swallow one cancellation
        for _ in range(50):
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.1)
        for t in self.tasks:
            if t.done() and not t.cancelled():
                t.exception()
        if self._on_close is not None:
            await self._on_close()


def in_flight(request: SubscribeRequest, metadata_value: int = 0) -> int:
    """The in-flight limit for a subscription: ``concurrencyMode=single`` means 1 (strict order)."""
    mode = request.metadata.get("concurrencyMode", "").lower()
    if mode == "single":
        return 1
    return max(1, metadata_value or request.max_in_flight)


class PubSub(Component):
    """A message broker."""

    @abc.abstractmethod
    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        """Publish once; return only when the broker has the message (durably, if it can)."""

    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> bool | asyncio.Future[Any]:
        """Publish at once, without waiting, when this component can.

        True: published. For a broker inside the sidecar's process, publishing is a local
        act; doing it here lets the sidecar answer in the same turn of the event loop, with
        no task per request.

        A future: the message is on its way (written to an open connection) and the future
        completes when the broker has it, as :meth:`publish` would return, or fails as it
        would raise. The sidecar waits on it without a task or coroutine around it.

        The default, False, means "await :meth:`publish` instead"; a component may also
        return False case by case (not connected yet, say). It must not await.
        """
        return False

    async def bulk_publish(self, topic: str, entries: list[BulkEntry],
                           metadata: dict[str, str]) -> list[BulkFailure]:
        """Publish many; returns the entries that failed. Default: concurrent single publishes."""
        async def one(e: BulkEntry) -> BulkFailure | None:
            try:
                await self.publish(topic, e.data, {**metadata, **e.metadata}, e.content_type)
            except Exception as exc:
                return BulkFailure(e.entry_id, str(exc) or type(exc).__name__)
            return None
        results = await asyncio.gather(*(one(e) for e in entries))
        return [r for r in results if r is not None]

    @abc.abstractmethod
    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> SubscriptionHandle:
        """Start delivering ``request.topic`` to ``handler``; up to ``max_in_flight`` at once.

        A message is acknowledged when ``handler`` returns and delivered again when it raises.
        """
