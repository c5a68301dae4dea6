"""The CloudEvent envelope the sidecar builds or completes (spec 3.2)."""
from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime

import orjson
import pytest

from pydapr.errors import APIError
from pydapr.ids import new_uuid
from pydapr.plugins.pubsub.envelope import child_traceparent, complete_envelope, flag, envelope, parse_ttl

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def build(data: bytes, ct: str, md: dict | None = None, ttl: float | None = None) -> dict:
    return orjson.loads(envelope(data, ct, "orders", "pubsub", "checkout", md or {}, TP, "", ttl))


def test_new_envelope_fields() -> None:
    ce = build(b'{"n": 12345678901234567890}', "application/json; charset=utf-8")
    assert ce["source"] == "checkout" and ce["type"] == "com.dapr.event.sent"
    assert ce["specversion"] == "1.0" and ce["topic"] == "orders" and ce["pubsubname"] == "pubsub"
    assert ce["datacontenttype"] == "application/json; charset=utf-8"
    assert ce["data"] == {"n": 12345678901234567890}
    assert ce["traceid"] == ce["traceparent"] == TP
    assert len(ce["id"]) == 36
    assert datetime.fromisoformat(ce["time"]).tzinfo is not None
    assert "expiration" not in ce and "subject" not in ce


def test_json_data_is_carried_as_published() -> None:
    data = b'{"z": 1, "a": 123456789012345678901234567890.5, "big": 3402823669209384634633746074}'
    body = envelope(data, "application/json", "orders", "pubsub", "checkout", None, TP)
    assert b'"data":' + data + b"," in body  # not parsed and written again: no rounding, same order
    assert orjson.loads(body)["data"]["z"] == 1


def test_text_binary_and_default_content_types() -> None:
    assert build(b"hello", "")["datacontenttype"] == "text/plain"
    assert build(b"hello", "")["data"] == "hello"
    ce = build(b"\x00\xff", "application/octet-stream")
    assert base64.b64decode(ce["data_base64"]) == b"\x00\xff" and "data" not in ce


def test_malformed_json_is_refused() -> None:
    with pytest.raises(APIError) as err:
        build(b"{nope", "application/json")
    assert err.value.code == "ERR_PUBSUB_EVENTS_SER" and err.value.http_status == 400


def test_overrides_except_protected_fields() -> None:
    ce = build(b"x", "text/plain", {"cloudevent.ID": "my-id", "cloudevent.source": "s",
                                     "cloudevent.type": "t", "cloudevent.subject": "sub",
                                     "cloudevent.topic": "evil", "cloudevent.pubsubname": "evil"})
    assert (ce["id"], ce["source"], ce["type"], ce["subject"]) == ("my-id", "s", "t", "sub")
    assert ce["topic"] == "orders" and ce["pubsubname"] == "pubsub"


def test_ttl_adds_expiration() -> None:
    ce = build(b"x", "text/plain", ttl=30)
    assert datetime.fromisoformat(ce["expiration"]) > datetime.fromisoformat(ce["time"])


def test_complete_existing_event_overwrites_topic_and_keeps_the_rest() -> None:
    body = orjson.dumps({"id": "1", "source": "me", "type": "t", "specversion": "1.0",
                         "topic": "fake", "pubsubname": "fake", "data": {"a": 1}})
    ce = orjson.loads(complete_envelope(body, "orders", "pubsub", "checkout", TP))
    assert (ce["id"], ce["source"], ce["type"], ce["data"]) == ("1", "me", "t", {"a": 1})
    assert ce["topic"] == "orders" and ce["pubsubname"] == "pubsub" and ce["traceid"] == TP
    assert "time" in ce


def test_complete_fills_missing_id_and_source() -> None:
    ce = orjson.loads(complete_envelope(b'{"data": 1}', "o", "p", "checkout", TP))
    assert ce["source"] == "checkout" and ce["id"] and ce["specversion"] == "1.0"


@pytest.mark.parametrize("body", [b"{bad", b"[1, 2]", b'{"specversion": "0.3"}', b'{"id": ""}',
                                  b'{"type": 5}'])
def test_invalid_cloudevents(body: bytes) -> None:
    with pytest.raises(APIError) as err:
        complete_envelope(body, "o", "p", "a", TP)
    assert err.value.code == "ERR_PUBSUB_CLOUD_EVENTS_SER" and err.value.http_status == 500


def test_traceparent_child_keeps_trace_id() -> None:
    child = child_traceparent(TP)
    assert child.split("-")[1] == TP.split("-")[1] and child != TP
    fresh = child_traceparent("garbage")
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", fresh)
    assert fresh.split("-")[1] != child_traceparent("").split("-")[1]


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = {new_uuid() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122


def test_ttl_and_flags() -> None:
    assert parse_ttl({"ttlInSeconds": "10"}) == 10
    assert parse_ttl({"ttl": "1m"}) == 60
    assert parse_ttl({}) is None
    for bad in ({"ttlInSeconds": "0"}, {"ttlInSeconds": "x"}, {"ttl": "-5s"}):
        with pytest.raises(APIError) as err:
            parse_ttl(bad)
        assert err.value.code == "ERR_PUBSUB_REQUEST_METADATA"
    assert flag({"rawPayload": "T"}, "rawPayload") is True
    assert flag({"rawPayload": "0"}, "rawPayload") is False
    with pytest.raises(APIError):
        flag({"rawPayload": "maybe"}, "rawPayload")
