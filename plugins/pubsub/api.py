"""api.pubsub: publish, bulk publish and streaming subscriptions over HTTP and gRPC.

Routes (spec 3.1, 3.3)::

    POST|PUT /v1.0/publish/{pubsubname}/{topic...}
    POST|PUT /v1.0-alpha1/publish/bulk/{pubsubname}/{topic...}   (and /v1.0/publish/bulk/...)

gRPC: ``PublishEvent``, ``BulkPublishEvent``, ``BulkPublishEventAlpha1``,
``SubscribeTopicEventsAlpha1``. Declarative and programmatic subscriptions
start in :meth:`PubSubAPI.start`, once the app's port is open.
"""
from __future__ import annotations

from asyncio import isfuture
from typing import TYPE_CHECKING, Any, Awaitable
from urllib.parse import unquote

import orjson

from pydapr.errors import APIError
from pydapr.registry import Route
from pydapr.server.request import JSON, NO_CONTENT, Request, Response

from .manager import Subscriber
from .publish import Publisher, bulk_event_bytes, when_confirmed

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["PubSubAPI"]


def _topic(raw: str) -> str:
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise APIError("ERR_MALFORMED_REQUEST", f"topic {raw!r} is not valid UTF-8 once decoded") from None


def _trace(md: Any) -> tuple[str, str]:
    tp = ts = ""
    for k, v in md or ():
        if k == "traceparent":
            tp = v
        elif k == "tracestate":
            ts = v
    return tp, ts


async def _no_content_after(pending: Awaitable[None]) -> Response:
    await pending
    return NO_CONTENT


class PubSubAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.publisher = Publisher(runtime)
        self.subscriber = Subscriber(runtime, self.publisher)

    def routes(self) -> list[Route]:
        verbs = ("POST", "PUT")
        return [
            Route(verbs, "/v1.0/publish/{pubsubname}/{topic*}", self.http_publish, "publish"),
            Route(verbs, "/v1.0/publish", self.http_publish_empty, "publish"),
            Route(verbs, "/v1.0/publish/bulk/{pubsubname}/{topic*}", self.http_bulk, "publish"),
            Route(verbs, "/v1.0-alpha1/publish/bulk/{pubsubname}/{topic*}", self.http_bulk, "publish"),
        ]

    def grpc_methods(self) -> dict[str, Any]:
        from .streaming import StreamingSubscriptions
        streaming = StreamingSubscriptions(self.subscriber, self.publisher)
        return {"PublishEvent": self.grpc_publish, "BulkPublishEvent": self.grpc_bulk,
                "BulkPublishEventAlpha1": self.grpc_bulk,
                "SubscribeTopicEventsAlpha1": streaming.handle}

    async def start(self) -> None:
        await self.subscriber.start()

    async def stop(self) -> None:
        await self.subscriber.stop()

    def describe(self) -> dict[str, Any]:
        subs = self.subscriber.describe()
        return {"subscriptions": subs} if subs else {}

    # -- HTTP ---------------------------------------------------------------------------------

    def http_publish_empty(self, req: Request) -> Response:
        self.publisher.component("")
        return NO_CONTENT  # not reached: an empty name always raises

    def http_publish(self, req: Request) -> Response | Awaitable[Response]:
        """Answered at once when the component published without waiting (no task per request)."""
        h = req.headers
        md = req.request_metadata() if req.query_string else {}
        name, topic = req.params["pubsubname"], req.params["topic"]
        if "%" in topic:
            topic = _topic(topic)
        pending = self.publisher.publish_now(name, topic, req.body, h.get("content-type", ""), md,
                                             h.get("traceparent", ""), h.get("tracestate", ""))
        if pending is None:
            return NO_CONTENT
        if isfuture(pending):  # the broker's confirm: answered from its callback, no task
            return when_confirmed(pending, NO_CONTENT, topic, name)
        return _no_content_after(pending)

    async def http_bulk(self, req: Request) -> Response:
        name, topic = req.params["pubsubname"], _topic(req.params["topic"])
        self.publisher.check(name, topic)
        try:
            items = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise APIError("ERR_PUBSUB_EVENTS_SER", f"the body is not a JSON array of entries: {exc}",
                           reason="DAPR_PUBSUB_UNMARSHAL_EVENTS") from None
        if not isinstance(items, list):
            raise APIError("ERR_PUBSUB_EVENTS_SER", "the body must be a JSON array of entries",
                           reason="DAPR_PUBSUB_UNMARSHAL_EVENTS")
        entries = []
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not isinstance(it.get("entryId"), str) or "event" not in it:
                raise APIError("ERR_PUBSUB_EVENTS_SER",
                               f"entry #{i} needs a string 'entryId' and an 'event'")
            ct = it.get("contentType") or ""
            md = it.get("metadata") or {}
            if not isinstance(ct, str) or not isinstance(md, dict):
                raise APIError("ERR_PUBSUB_EVENTS_SER",
                               f"entry #{i}: 'contentType' must be a string and 'metadata' an object")
            entries.append({"entryId": it["entryId"], "contentType": ct,
                            "data": bulk_event_bytes(it["event"], ct, it["entryId"]),
                            "metadata": {str(k): str(v) for k, v in md.items()}})
        failed = await self.publisher.bulk_publish(
            name, topic, entries, req.request_metadata(), req.headers.get("traceparent", ""),
            req.headers.get("tracestate", ""))
        if not failed:
            return NO_CONTENT
        body = {"failedEntries": [{"entryId": f.entry_id, "error": f.error} for f in failed],
                "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"}
        data = orjson.dumps(body)
        return Response(500, data, [("metadata.responseData", data.decode())], JSON)

    # -- gRPC ---------------------------------------------------------------------------------

    async def grpc_publish(self, request: Any, context: Any) -> Any:
        from google.protobuf import empty_pb2
        tp, ts = _trace(context.invocation_metadata())
        await self.publisher.publish(request.pubsub_name, request.topic, request.data,
                                     request.data_content_type, dict(request.metadata), tp, ts)
        return empty_pb2.Empty()

    async def grpc_bulk(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import pubsub_pb2 as pb
        tp, ts = _trace(context.invocation_metadata())
        entries = [{"entryId": e.entry_id, "data": e.event, "contentType": e.content_type,
                    "metadata": dict(e.metadata)} for e in request.entries]
        failed = await self.publisher.bulk_publish(request.pubsub_name, request.topic, entries,
                                                   dict(request.metadata), tp, ts)
        resp = pb.BulkPublishResponse()
        for f in failed:
            resp.failedEntries.add(entry_id=f.entry_id, error=f.error)
        return resp
