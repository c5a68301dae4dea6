"""Publishing: validation, topic scopes, the envelope and the component call (spec 3.1 to 3.4).

One code path serves HTTP, gRPC, bulk publishing and dead-letter
re-publishing, so every way in goes through the same checks in the same
order: pub/sub configured, name, component, topic, metadata, scopes, envelope.
Nothing reaches the broker until every check has passed.
"""
from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any, Mapping

import orjson

from pydapr.errors import APIError
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import BulkEntry, BulkFailure, PubSub
from pydapr.resiliency import Policy, Resiliency

from .envelope import child_traceparent, complete_envelope, flag, is_cloudevent, new_envelope, parse_ttl
from .scopes import TopicScopes

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["Publisher", "Outgoing", "bulk_event_bytes"]

log = logging.getLogger("pydapr.pubsub")


class Outgoing:
    """One message ready for the broker: bytes, broker metadata and content type."""

    __slots__ = ("data", "metadata", "content_type")

    def __init__(self, data: bytes, metadata: dict[str, str], content_type: str) -> None:
        self.data, self.metadata, self.content_type = data, metadata, content_type


class Publisher:
    """Checks and publishes on behalf of the local app."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._scopes: dict[str, TopicScopes] = {}
        self._policies: dict[str, Policy] = {}
        self.resiliency = Resiliency(runtime.resources.resiliencies)

    # -- lookups ------------------------------------------------------------------------

    def component(self, name: str) -> PubSub:
        comp = self.rt.component("pubsub", name) if name else None
        if comp is not None:
            return comp  # type: ignore[return-value]
        if not self.rt.has_kind("pubsub"):
            raise APIError("ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured")
        if not name:
            raise APIError("ERR_PUBSUB_EMPTY", "pubsub name is empty")
        raise APIError("ERR_PUBSUB_NOT_FOUND", f"pubsub {name} is not found",
                       metadata={"appID": self.rt.app_id})

    def scopes(self, name: str, comp: PubSub) -> TopicScopes:
        sc = self._scopes.get(name)
        if sc is None:
            sc = self._scopes[name] = TopicScopes.from_metadata(comp.info.properties, self.rt.app_id)
        return sc

    def policy(self, name: str) -> Policy:
        p = self._policies.get(name)
        if p is None:
            p = self._policies[name] = self.resiliency.for_component(name, "outbound", "pubsub")
        return p

    def check(self, name: str, topic: str) -> PubSub:
        """Component, topic and publishing scope; raises the matching Dapr error."""
        comp = self.component(name)
        if not topic:
            raise APIError("ERR_TOPIC_NAME_EMPTY", f"topic is empty in pubsub {name}")
        if not self.scopes(name, comp).may_publish(topic):
            raise APIError("ERR_PUBSUB_FORBIDDEN",
                           f"topic {topic} is not allowed for app id {self.rt.app_id}")
        return comp

    # -- building the message -------------------------------------------------------------

    def prepare(self, comp: PubSub, name: str, topic: str, data: bytes, content_type: str,
                metadata: Mapping[str, str], traceparent: str = "", tracestate: str = "") -> Outgoing:
        md = dict(metadata)
        raw = flag(md, "rawPayload")
        ttl = parse_ttl(md)
        native_ttl = Feature.MESSAGE_TTL in comp.features
        if ttl is not None:
            md.pop("ttl", None)
            md["ttlInSeconds"] = str(max(1, int(ttl)))
        tp = child_traceparent(traceparent)
        if raw:
            md["traceid"], md["tracestate"] = tp, tracestate
            return Outgoing(data, md, content_type)
        expire = None if native_ttl else ttl
        if is_cloudevent(content_type):
            body = complete_envelope(data, topic, name, self.rt.app_id, tp, tracestate, expire)
        else:
            body = new_envelope(data, content_type, topic, name, self.rt.app_id, md, tp, tracestate,
                                expire)
        return Outgoing(body, md, "application/cloudevents+json")

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, name: str, topic: str, data: bytes, content_type: str,
                      metadata: Mapping[str, str], traceparent: str = "", tracestate: str = "") -> None:
        comp = self.check(name, topic)
        out = self.prepare(comp, name, topic, data, content_type, metadata, traceparent, tracestate)
        await self.send(comp, name, topic, out)

    async def send(self, comp: PubSub, name: str, topic: str, out: Outgoing) -> None:
        policy = self.policy(name)
        try:
            if policy.retry is None and policy.timeout is None and policy.breaker is None:
                await comp.publish(topic, out.data, out.metadata, out.content_type)
            else:
                await policy.run(lambda: comp.publish(topic, out.data, out.metadata, out.content_type))
        except APIError:
            raise
        except Exception as exc:
            raise APIError("ERR_PUBSUB_PUBLISH_MESSAGE",
                           f"error when publishing to topic {topic} in pubsub {name}: "
                           f"{exc or type(exc).__name__}") from None

    async def bulk_publish(self, name: str, topic: str, entries: list[dict[str, Any]],
                           metadata: Mapping[str, str], traceparent: str = "",
                           tracestate: str = "") -> list[BulkFailure]:
        """Publish entries ``{entryId, data (bytes), contentType, metadata}``; returns failures.

        Every entry is validated and enveloped before anything is published.
        """
        comp = self.check(name, topic)
        seen: set[str] = set()
        ready: list[BulkEntry] = []
        for e in entries:
            eid = e["entryId"]
            if not eid or eid in seen:
                raise APIError("ERR_PUBSUB_EVENTS_SER",
                               f"entryId {eid!r} is {'empty' if not eid else 'not unique'}: each "
                               "entry needs its own entryId")
            seen.add(eid)
            md = {**metadata, **(e.get("metadata") or {})}
            out = self.prepare(comp, name, topic, e["data"], e.get("contentType") or "", md,
                               traceparent, tracestate)
            ready.append(BulkEntry(eid, out.data, out.content_type, out.metadata))
        if not ready:
            return []
        policy = self.policy(name)
        try:
            return await policy.run(lambda: comp.bulk_publish(topic, ready, {}))
        except Exception as exc:
            return [BulkFailure(e.entry_id, str(exc) or type(exc).__name__) for e in ready]


def bulk_event_bytes(event: Any, content_type: str, entry_id: str) -> bytes:
    """An HTTP bulk entry's ``event`` to bytes by its content type (spec 3.3)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/octet-stream":
        if not isinstance(event, str):
            raise _bad_entry(entry_id, "an application/octet-stream event must be a base64 string")
        try:
            return base64.b64decode(event, validate=True)
        except ValueError:
            raise _bad_entry(entry_id, "event is not valid base64") from None
    if media.startswith("text/") or media == "application/xml":
        if not isinstance(event, str):
            raise _bad_entry(entry_id, f"a {media} event must be a JSON string")
        return event.encode()
    if media in ("application/json", "application/cloudevents+json") or media.endswith("+json"):
        return orjson.dumps(event)
    raise _bad_entry(entry_id, f"content type {content_type!r} is not supported in bulk publish "
                     "(use application/json, application/cloudevents+json, text/*, "
                     "application/xml or application/octet-stream)")


def _bad_entry(entry_id: str, why: str) -> APIError:
    return APIError("ERR_PUBSUB_EVENTS_SER", f"entry {entry_id!r}: {why}")
