"""Topic scoping on a pub/sub component (security spec 1.5, rules S1 to S4).

Metadata names are matched case-insensitively and all whitespace inside the
values is removed, as Dapr does; app ids and topics compare exactly.
``app3=`` yields a scope list holding only the empty string: a non-empty list
that matches no topic, so app3 may use nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

__all__ = ["TopicScopes", "parse_scopes"]

_WS = re.compile(r"\s+")


def _value(props: Mapping[str, str], name: str) -> str:
    low = name.lower()
    for k, v in props.items():
        if k.lower() == low:
            return _WS.sub("", str(v))
    return ""


def parse_scopes(value: str, app_id: str) -> list[str]:
    """The topics ``app_id`` is granted by ``app1=t1,t2;app2=t3`` (duplicates removed, order kept)."""
    topics: list[str] = []
    for part in _WS.sub("", value).split(";"):
        pieces = part.split("=")
        if len(pieces) < 2 or pieces[0] != app_id:
            continue
        for t in pieces[1].split(","):
            if t not in topics:
                topics.append(t)
    return topics


def _list(value: str) -> frozenset[str]:
    return frozenset(t for t in value.split(",") if t) if value else frozenset()


@dataclass(frozen=True)
class TopicScopes:
    """The scoping decision for one app on one component."""

    publishing: tuple[str, ...] = ()
    subscribing: tuple[str, ...] = ()
    allowed: frozenset[str] = frozenset()
    protected: frozenset[str] = frozenset()

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], app_id: str) -> TopicScopes:
        return cls(tuple(parse_scopes(_value(props, "publishingScopes"), app_id)),
                   tuple(parse_scopes(_value(props, "subscriptionScopes"), app_id)),
                   _list(_value(props, "allowedTopics")), _list(_value(props, "protectedTopics")))

    @staticmethod
    def _decide(topic: str, scoped: tuple[str, ...], allowed: frozenset[str],
                protected: frozenset[str]) -> bool:
        if allowed and topic not in allowed:  # S1
            return False
        if topic not in protected and not scoped:  # S3
            return True
        return bool(topic) and topic in scoped  # S2, S4 (the "" of `app=` matches nothing)

    def may_publish(self, topic: str) -> bool:
        return self._decide(topic, self.publishing, self.allowed, self.protected)

    def may_subscribe(self, topic: str) -> bool:
        return self._decide(topic, self.subscribing, self.allowed, self.protected)
