"""Subscriptions from every source, CEL routing and the app-response contract."""
from __future__ import annotations

import pytest

from pydapr.errors import ConfigError
from pydapr.plugins.pubsub.delivery import DROP, RETRY, SUCCESS, DeliveryFailed, app_status
from pydapr.plugins.pubsub.subscriptions import RoutingError, from_json


def test_v1_route_gets_a_leading_slash() -> None:
    sub = from_json({"pubsubname": "p", "topic": "t", "route": "orders", "metadata": {"rawPayload": "true"}})
    assert sub.route({}) == "/orders" and sub.raw_payload


def test_v2_rules_in_order_then_default() -> None:
    sub = from_json({"pubsubname": "p", "topic": "t", "routes": {
        "rules": [{"match": 'event.type == "widget"', "path": "/widgets"},
                  {"match": "event.data.amount > 10", "path": "/big"}],
        "default": "/other"}, "deadLetterTopic": "dead"})
    assert sub.route({"type": "widget", "data": {"amount": 99}}) == "/widgets"
    assert sub.route({"type": "gadget", "data": {"amount": 99}}) == "/big"
    assert sub.route({"type": "gadget", "data": {"amount": 1}}) == "/other"
    assert sub.dead_letter_topic == "dead"


def test_no_match_without_default_is_none() -> None:
    sub = from_json({"pubsubname": "p", "topic": "t",
                     "routes": {"rules": [{"match": 'event.type == "x"', "path": "/x"}]}})
    assert sub.route({"type": "y"}) is None


def test_non_boolean_rule_is_a_routing_error() -> None:
    sub = from_json({"pubsubname": "p", "topic": "t",
                     "routes": {"rules": [{"match": "event.type", "path": "/x"}]}})
    with pytest.raises(RoutingError):
        sub.route({"type": "y"})


@pytest.mark.parametrize("item", [
    {"topic": "t", "route": "/x"},
    {"pubsubname": "p", "topic": "", "route": "/x"},
    {"pubsubname": "p", "topic": "t", "routes": {"rules": [{"match": "event.type ==", "path": "/x"}]}},
    "not an object",
])
def test_bad_app_subscriptions(item: object) -> None:
    with pytest.raises(ConfigError):
        from_json(item)


@pytest.mark.parametrize("body, outcome", [
    (b"", SUCCESS), (b"ok", SUCCESS), (b"{}", SUCCESS), (b'{"status": ""}', SUCCESS),
    (b'{"status": "SUCCESS"}', SUCCESS), (b'{"status": "RETRY"}', RETRY),
    (b'{"status": "DROP"}', DROP), (b"{not json", SUCCESS),
])
def test_app_status(body: bytes, outcome: str) -> None:
    assert app_status(body) == outcome


@pytest.mark.parametrize("body", [b'{"status": "success"}', b'{"status": "GARBAGE"}'])
def test_unknown_status_is_an_error(body: bytes) -> None:
    with pytest.raises(DeliveryFailed):
        app_status(body)
