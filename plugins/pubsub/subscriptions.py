"""Subscriptions: what to deliver where (spec 3.6, 3.7, 9.4).

Three sources build the same :class:`Subscription`: declarative resources,
the app's programmatic answer (``GET /dapr/subscribe`` or gRPC
``ListTopicSubscriptions``) and streaming calls. Routing rules are CEL
expressions over ``event``, compiled once with cel-python when the
subscription is built; a rule that does not compile stops that subscription,
never the others.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from pydapr.errors import ConfigError

if TYPE_CHECKING:
    from pydapr.resources import Subscription as SubscriptionResource
    from pydapr.server.appchannel import AppChannel

__all__ = ["Rule", "BulkConfig", "Subscription", "RoutingError", "from_resource", "from_json",
           "from_grpc", "discover"]

log = logging.getLogger("pydapr.pubsub")


class RoutingError(Exception):
    """A rule's expression failed or returned something other than a boolean."""


@dataclass
class Rule:
    match: str
    path: str
    program: Any = None

    def matches(self, activation: dict[str, Any]) -> bool:
        if self.program is None:
            return True
        try:
            result = self.program.evaluate(activation)
        except Exception as exc:
            raise RoutingError(f"rule {self.match!r}: {exc}") from None
        if type(result).__name__ != "BoolType" and not isinstance(result, bool):
            raise RoutingError(f"rule {self.match!r} returned {type(result).__name__}, not a boolean")
        return bool(result)


@dataclass(frozen=True)
class BulkConfig:
    enabled: bool = False
    max_messages: int = 100
    max_await_ms: int = 1000


@dataclass
class Subscription:
    pubsub: str
    topic: str
    rules: list[Rule]
    metadata: dict[str, str] = field(default_factory=dict)
    dead_letter_topic: str = ""
    bulk: BulkConfig = BulkConfig()
    type: str = "PROGRAMMATIC"  # DECLARATIVE | PROGRAMMATIC | STREAMING

    @property
    def raw_payload(self) -> bool:
        return self.metadata.get("rawPayload", "").lower() in ("true", "1", "t")

    @property
    def has_expressions(self) -> bool:
        return any(r.program is not None for r in self.rules)

    def route(self, event: dict[str, Any] | None) -> str | None:
        """The path of the first matching rule; None when no rule matches."""
        if not self.has_expressions:
            return self.rules[0].path if self.rules else None
        import celpy
        activation = {"event": celpy.json_to_cel(event if event is not None else {})}
        for rule in self.rules:
            if rule.matches(activation):
                return rule.path
        return None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pubsubname": self.pubsub, "topic": self.topic, "type": self.type,
                               "rules": [{"match": r.match, "path": r.path} for r in self.rules]}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        if self.dead_letter_topic:
            out["deadLetterTopic"] = self.dead_letter_topic
        return out


def _path(p: str, http: bool) -> str:
    if http and p and not p.startswith("/"):
        return "/" + p
    return p


def _rules(rules: list[tuple[str, str]], default: str, http: bool) -> list[Rule]:
    out: list[Rule] = []
    env = None
    for match, path in rules:
        program = None
        if match.strip():
            import celpy
            env = env or celpy.Environment()
            try:
                program = env.program(env.compile(match))
            except Exception as exc:
                raise ConfigError(f"routing rule {match!r} is not a valid CEL expression: {exc}") from None
        out.append(Rule(match, _path(path, http), program))
    if default:
        out.append(Rule("", _path(default, http)))
    return out


def _bulk(raw: Any) -> BulkConfig:
    if not isinstance(raw, dict) or not raw.get("enabled"):
        return BulkConfig()
    return BulkConfig(True, int(raw.get("maxMessagesCount") or 100),
                      int(raw.get("maxAwaitDurationMs") or 1000))


def from_resource(res: SubscriptionResource, http: bool = True) -> Subscription:
    """A declarative ``Subscription`` (v1alpha1 or v2alpha1)."""
    try:
        rules = _rules(res.rules, res.default_route, http)
    except ConfigError as exc:
        raise ConfigError(f"{res.source}: subscription {res.name}: {exc}") from None
    return Subscription(res.pubsubname, res.topic, rules, dict(res.metadata), res.dead_letter_topic,
                        _bulk(res.bulk_subscribe), "DECLARATIVE")


def from_json(item: Any) -> Subscription:
    """One element of the app's ``/dapr/subscribe`` answer (v1 ``route`` or v2 ``routes``)."""
    if not isinstance(item, dict):
        raise ConfigError(f"expected an object, got {type(item).__name__}")
    pubsub, topic = item.get("pubsubname") or item.get("pubsubName"), item.get("topic")
    if not isinstance(pubsub, str) or not pubsub or not isinstance(topic, str) or not topic:
        raise ConfigError("needs non-empty 'pubsubname' and 'topic'")
    routes = item.get("routes") if isinstance(item.get("routes"), dict) else {}
    pairs = []
    for r in routes.get("rules") or ():
        if not isinstance(r, dict) or not isinstance(r.get("path"), str):
            raise ConfigError(f"{pubsub}/{topic}: each routes.rules entry needs 'match' and 'path'")
        pairs.append((str(r.get("match") or ""), r["path"]))
    default = routes.get("default") or item.get("route") or ""
    md = item.get("metadata") or {}
    return Subscription(pubsub, topic, _rules(pairs, str(default), True),
                        {str(k): str(v) for k, v in md.items()} if isinstance(md, dict) else {},
                        str(item.get("deadLetterTopic") or ""), _bulk(item.get("bulkSubscribe")))


def from_grpc(ts: Any) -> Subscription:
    """One ``TopicSubscription`` of a gRPC app (a subscription without routes gets path "")."""
    pairs = [(r.match, r.path) for r in ts.routes.rules]
    rules = _rules(pairs, ts.routes.default, False)
    if not rules:
        rules = [Rule("", "")]
    bulk = BulkConfig()
    if ts.HasField("bulk_subscribe") and ts.bulk_subscribe.enabled:
        bulk = BulkConfig(True, ts.bulk_subscribe.max_messages_count or 100,
                          ts.bulk_subscribe.max_await_duration_ms or 1000)
    return Subscription(ts.pubsub_name, ts.topic, rules, dict(ts.metadata), ts.dead_letter_topic, bulk)


async def discover(channel: AppChannel, app_id: str) -> list[Subscription]:
    """Ask the app for its programmatic subscriptions; errors are logged, never fatal."""
    subs: list[Subscription] = []
    if channel.is_grpc:
        import grpc
        from google.protobuf import empty_pb2
        try:
            resp = await channel.stub().ListTopicSubscriptions(
                empty_pb2.Empty(), metadata=channel.grpc_metadata(), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                log.warning("ListTopicSubscriptions failed: %s", exc.details())
            return subs
        items: list[Any] = list(resp.subscriptions)
        build = from_grpc
    else:
        try:
            resp = await channel.call_http("GET", "/dapr/subscribe",
                                           [("dapr-app-id", app_id), ("content-type", "application/json")],
                                           timeout=10)
        except ConnectionError as exc:
            log.warning("cannot read the app's subscriptions from /dapr/subscribe: %s", exc)
            return subs
        if resp.status == 404 or (200 <= resp.status < 300 and not resp.body.strip()):
            return subs
        if not 200 <= resp.status < 300:
            log.warning("GET /dapr/subscribe answered %d; no programmatic subscriptions", resp.status)
            return subs
        try:
            items = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            log.warning("GET /dapr/subscribe did not answer JSON; no programmatic subscriptions")
            return subs
        if not isinstance(items, list):
            log.warning("GET /dapr/subscribe answered a %s, not a list", type(items).__name__)
            return subs
        build = from_json
    for i, item in enumerate(items):
        try:
            sub = build(item)
        except ConfigError as exc:
            log.warning("app subscription #%d ignored: %s", i, exc)
            continue
        if not sub.rules:
            log.warning("app subscription %s/%s has no route; ignored", sub.pubsub, sub.topic)
            continue
        subs.append(sub)
    return subs
