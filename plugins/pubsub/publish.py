"""Publishing: validation, topic scopes, the envelope and the component call (spec 3.1 to 3.4).

One code path serves HTTP, gRPC, bulk publishing and dead-letter
re-publishing, so every way in goes through the same checks in the same
order: pub/sub configured, name, component, topic, metadata, scopes, envelope.
Nothing reaches the broker until every check has passed.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Mapping

import orjson

from pydapr.errors import APIError
from pydapr.ids import new_traceparent
from pydapr.kinds import Feature
from pydapr.kinds.pubsub import BulkEntry, BulkFailure, PubSub
from pydapr.resiliency import Policy, Resiliency

from .envelope import CE_CONTENT_TYPE, child_traceparent, envelope, flag, parse_ttl
from .scopes import TopicScopes

if TYPE_CHECKING:
    from pydapr.runtime import ComponentSlot, Runtime

__all__ = ["Publisher", "bulk_event_bytes", "when_confirmed"]

log = logging.getLogger("pydapr.pubsub")


class Target:
    """What publishing to one pub/sub needs, worked out once per component instance."""

    __slots__ = ("slot", "comp", "scopes", "any_topic", "policy", "plain", "native_ttl")

    def __init__(self, slot: ComponentSlot, comp: PubSub, scopes: TopicScopes,
                 policy: Policy) -> None:
        #: the runtime's slot for the name: the target is current while it holds ``comp``
        self.slot = slot
        self.comp, self.scopes, self.policy = comp, scopes, policy
        #: no topic scoping at all on this component: every topic may be published
        self.any_topic = not (scopes.publishing or scopes.allowed or scopes.protected)
        #: no resiliency policy applies: publish directly, or without waiting when the component can
        self.plain = policy.retry is None and policy.timeout is None and policy.breaker is None
        self.native_ttl = Feature.MESSAGE_TTL in comp.features


class Publisher:
    """Checks and publishes on behalf of the local app."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._targets: dict[str, Target] = {}
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

    def target(self, name: str) -> Target:
        """The pub/sub named ``name``; raises the matching Dapr error when there is none."""
        t = self._targets.get(name)
        if t is not None and t.slot.instance is t.comp and self.rt.slots.get(name) is t.slot:
            return t
        comp = self.component(name)
        scopes = TopicScopes.from_metadata(comp.info.properties, self.rt.app_id)
        policy = self.resiliency.for_component(name, "outbound", "pubsub")
        t = self._targets[name] = Target(self.rt.slots[name], comp, scopes, policy)
        return t

    def checked(self, name: str, topic: str) -> Target:
        """Component, topic and publishing scope; raises the matching Dapr error."""
        t = self.target(name)
        if not topic or not t.any_topic:
            self._check_topic(t, name, topic)
        return t

    def _check_topic(self, t: Target, name: str, topic: str) -> None:
        if not topic:
            raise APIError("ERR_TOPIC_NAME_EMPTY", f"topic is empty in pubsub {name}")
        if not t.scopes.may_publish(topic):
            raise APIError("ERR_PUBSUB_FORBIDDEN",
                           f"topic {topic} is not allowed for app id {self.rt.app_id}")

    def check(self, name: str, topic: str) -> PubSub:
        return self.checked(name, topic).comp

    # -- building the message -------------------------------------------------------------

    def prepare(self, t: Target, name: str, topic: str, data: bytes, content_type: str,
                metadata: Mapping[str, str], traceparent: str = "",
                tracestate: str = "") -> tuple[bytes, dict[str, str], str]:
        """The bytes, broker metadata and content type to publish."""
        tp = child_traceparent(traceparent)
        md = dict(metadata)
        raw = flag(md, "rawPayload")
        ttl = parse_ttl(md)
        if ttl is not None:
            md.pop("ttl", None)
            md["ttlInSeconds"] = str(max(1, int(ttl)))
        if raw:
            md["traceid"], md["tracestate"] = tp, tracestate
            return data, md, content_type
        expire = None if t.native_ttl else ttl
        return (envelope(data, content_type, topic, name, self.rt.app_id, md, tp, tracestate, expire),
                md, CE_CONTENT_TYPE)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, name: str, topic: str, data: bytes, content_type: str,
                      metadata: Mapping[str, str], traceparent: str = "", tracestate: str = "") -> None:
        pending = self.publish_now(name, topic, data, content_type, metadata, traceparent, tracestate)
        if pending is not None:
            try:
                await pending
            except APIError:
                raise
            except Exception as exc:  # a broker's confirm fails with the component's own error
                raise _publish_failed(exc, topic, name) from None

    def publish_now(self, name: str, topic: str, data: bytes, content_type: str,
                    metadata: Mapping[str, str], traceparent: str = "",
                    tracestate: str = "") -> Awaitable[None] | None:
        """Check, envelope and publish: None when already published, else what to await.

        Checks and the envelope never wait. A component that publishes without waiting
        (:meth:`PubSub.publish_nowait`) is done here, unless resiliency policies apply to it:
        they need the awaited path. When the component hands back the future of the broker's
        confirm, that future is returned as it is: its failure is the component's own
        exception (:func:`when_confirmed` and :meth:`publish` make it a Dapr error). What
        else is returned to await raises Dapr errors itself.

        The common case (a known pub/sub without topic scoping, no metadata) is written out
        here rather than through :meth:`checked` and :meth:`prepare`: a publish often wakes an
        idle sidecar, and every call on the way is code to bring back into the CPU's caches.
        """
        t = self._targets.get(name)
        if (t is None or t.slot.instance is not t.comp or self.rt.slots.get(name) is not t.slot
                or not topic or not t.any_topic):
            t = self.checked(name, topic)
        if metadata:
            body, md, ct = self.prepare(t, name, topic, data, content_type, metadata, traceparent,
                                        tracestate)
        else:
            tp = child_traceparent(traceparent) if traceparent else new_traceparent()
            body = envelope(data, content_type, topic, name, self.rt.app_id, None, tp, tracestate)
            md, ct = {}, CE_CONTENT_TYPE
        if t.plain:
            try:
                done = t.comp.publish_nowait(topic, body, md, ct)
            except APIError:
                raise
            except Exception as exc:
                raise _publish_failed(exc, topic, name) from None
            if done is True:
                return None
            if done:
                return done  # the broker's confirm, to wait on
        return self.send(t, name, topic, body, md, ct)

    async def send(self, t: Target, name: str, topic: str, body: bytes, md: dict[str, str],
                   ct: str) -> None:
        comp = t.comp
        try:
            if t.plain:
                await comp.publish(topic, body, md, ct)
            else:
                await t.policy.run(lambda: comp.publish(topic, body, md, ct))
        except APIError:
            raise
        except Exception as exc:
            raise _publish_failed(exc, topic, name) from None

    async def bulk_publish(self, name: str, topic: str, entries: list[dict[str, Any]],
                           metadata: Mapping[str, str], traceparent: str = "",
                           tracestate: str = "") -> list[BulkFailure]:
        """Publish entries ``{entryId, data (bytes), contentType, metadata}``; returns failures.

        Every entry is validated and enveloped before anything is published.
        """
        t = self.checked(name, topic)
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
            body, out_md, ct = self.prepare(t, name, topic, e["data"], e.get("contentType") or "",
                                            md, traceparent, tracestate)
            ready.append(BulkEntry(eid, body, ct, out_md))
        if not ready:
            return []
        try:
            return await t.policy.run(lambda: t.comp.bulk_publish(topic, ready, {}))
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


def when_confirmed(confirm: asyncio.Future, value: Any, topic: str, name: str) -> asyncio.Future:
    """A future of ``value`` once the broker confirmed; its failure as a Dapr error.

    A callback instead of a coroutine: the answer is ready one loop turn after the confirm,
    as it would be from a task, with no task, coroutine or frame per publish.
    """
    out = confirm.get_loop().create_future()

    def done(f: asyncio.Future) -> None:
        if out.done():
            return
        if f.cancelled():
            out.cancel()
            return
        exc = f.exception()
        if exc is None:
            out.set_result(value)
        elif isinstance(exc, APIError):
            out.set_exception(exc)
        else:
            out.set_exception(_publish_failed(exc, topic, name))
    confirm.add_done_callback(done)
    return out


def _publish_failed(exc: BaseException, topic: str, name: str) -> APIError:
    return APIError("ERR_PUBSUB_PUBLISH_MESSAGE",
                    f"error when publishing to topic {topic} in pubsub {name}: "
                    f"{exc or type(exc).__name__}")


def _bad_entry(entry_id: str, why: str) -> APIError:
    return APIError("ERR_PUBSUB_EVENTS_SER", f"entry {entry_id!r}: {why}")
