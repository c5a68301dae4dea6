"""Pub/sub through a real sidecar and a real HTTP app: publish checks, scopes, routing,
retries, dead letters, timeouts, raw payloads, bulk, and the app API token."""
from __future__ import annotations

import base64
import time
from typing import Any, Callable, Iterator

import orjson
import pytest

from pydapr.testing import Sidecar
from pydapr.testing.recording_app import Recorded, RecordingApp

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mem}
spec: {type: pubsub.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: scoped}
spec:
  type: pubsub.in-memory
  version: v1
  metadata:
  - {name: publishingScopes, value: "itest=allowed,secret"}
  - {name: subscriptionScopes, value: "itest=allowed"}
  - {name: protectedTopics, value: "secret"}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec:
  policies:
    timeouts: {short: 300ms}
    retries: {three: {policy: constant, duration: 10ms, maxRetries: 3}}
  targets:
    components:
      mem: {inbound: {timeout: short, retry: three}}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: routed}
spec:
  pubsubname: mem
  topic: routed
  routes:
    rules:
    - {match: 'event.data.kind == "widget"', path: /widgets}
    default: /others
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: bad}
spec: {pubsubname: mem, topic: bad, routes: {default: /bad}, deadLetterTopic: poison}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: hang}
spec: {pubsubname: mem, topic: hang, routes: {default: /hang}, deadLetterTopic: poison}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: poison}
spec: {pubsubname: mem, topic: poison, route: /dead}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: bulk}
spec:
  pubsubname: mem
  topic: bulk
  routes: {default: /bulk}
  bulkSubscribe: {enabled: true, maxMessagesCount: 5, maxAwaitDurationMs: 100}
"""

PROGRAMMATIC = [
    {"pubsubname": "mem", "topic": "orders", "route": "orders"},
    {"pubsubname": "mem", "topic": "raw", "route": "/raw", "metadata": {"rawPayload": "true"}},
    {"pubsubname": "scoped", "topic": "allowed", "route": "/allowed"},
    {"pubsubname": "scoped", "topic": "denied", "route": "/denied"},
]


class App(RecordingApp):
    """A recording app whose POST answers depend on the path."""

    def __init__(self, answers: dict[str, Callable[[Recorded], tuple[int, bytes]]]) -> None:
        super().__init__({"GET /dapr/subscribe": (200, orjson.dumps(PROGRAMMATIC))})
        self.answers = answers

    def _answer(self, rec: Recorded) -> tuple[int, bytes]:
        fn = self.answers.get(rec.path)
        return fn(rec) if fn is not None else super()._answer(rec)


def _bulk_ok(rec: Recorded) -> tuple[int, bytes]:
    entries = orjson.loads(rec.body)["entries"]
    return 200, orjson.dumps({"statuses": [{"entryId": e["entryId"], "status": "SUCCESS"} for e in entries]})


def _hang(rec: Recorded) -> tuple[int, bytes]:
    time.sleep(2)
    return 200, b""


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[App, Sidecar]]:
    app = App({"/bad": lambda r: (200, b'{"status":"GARBAGE"}'), "/hang": _hang, "/bulk": _bulk_ok})
    with app:
        sc = Sidecar(app_id="itest", resources=RESOURCES, app_port=app.port,
                     env={"APP_API_TOKEN": "app-secret-token"})
        with sc:
            sc.wait("/v1.0/healthz")
            yield app, sc


def publish(sc: Sidecar, target: str, body: Any = b"{}", ct: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    status, _, out = sc.request("POST", f"/v1.0/publish/{target}", data, {"content-type": ct})
    return status, (orjson.loads(out) if out else None)


def on(path: str) -> Callable[[Recorded], bool]:
    return lambda r: r.method == "POST" and r.path == path


def test_delivery_is_a_cloudevent_with_the_app_token(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    assert publish(sc, "mem/orders", {"order": 1})[0] == 204
    (rec,) = app.wait_for(on("/orders"))
    ce = orjson.loads(rec.body)
    assert ce["data"] == {"order": 1} and ce["source"] == "itest" and ce["topic"] == "orders"
    assert rec.headers["content-type"] == "application/cloudevents+json"
    assert rec.headers["dapr-api-token"] == "app-secret-token"
    assert rec.headers["pubsubname"] == "mem" and rec.headers["traceparent"] == ce["traceparent"]
    subscribe_call = app.wait_for(lambda r: r.path == "/dapr/subscribe")[0]
    assert subscribe_call.headers["dapr-api-token"] == "app-secret-token"


@pytest.mark.parametrize("target, body, ct, status, code", [
    ("nope/orders", b"{}", "application/json", 404, "ERR_PUBSUB_NOT_FOUND"),
    ("mem", b"{}", "application/json", 404, "ERR_TOPIC_NAME_EMPTY"),
    ("mem/orders", b"{oops", "application/json", 400, "ERR_PUBSUB_EVENTS_SER"),
    ("mem/orders", b"{oops", "application/cloudevents+json", 500, "ERR_PUBSUB_CLOUD_EVENTS_SER"),
    ("mem/orders", b'{"specversion": "9"}', "application/cloudevents+json", 500,
     "ERR_PUBSUB_CLOUD_EVENTS_SER"),
    ("mem/orders?metadata.rawPayload=perhaps", b"{}", "application/json", 400,
     "ERR_PUBSUB_REQUEST_METADATA"),
    ("mem/orders?metadata.ttlInSeconds=-1", b"{}", "application/json", 400,
     "ERR_PUBSUB_REQUEST_METADATA"),
])
def test_bad_publish_is_refused_and_publishes_nothing(env: tuple[App, Sidecar], target: str, body: bytes,
                                                      ct: str, status: int, code: str) -> None:
    app, sc = env
    got, err = publish(sc, target, body, ct)
    assert (got, err["errorCode"]) == (status, code)
    assert err["message"]
    marker = {"marker": target + ct}
    assert publish(sc, "mem/orders", marker)[0] == 204
    app.wait_for(lambda r: r.path == "/orders" and orjson.loads(r.body)["data"] == marker)
    assert not [r for r in app.requests if r.path == "/orders" and b"oops" in r.body]


def test_empty_pubsub_name(env: tuple[App, Sidecar]) -> None:
    _, sc = env
    status, _, body = sc.request("POST", "/v1.0/publish", b"{}")
    assert status == 404 and orjson.loads(body)["errorCode"] == "ERR_PUBSUB_EMPTY"


def test_topic_scopes(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    status, err = publish(sc, "scoped/denied")
    assert status == 403 and err["errorCode"] == "ERR_PUBSUB_FORBIDDEN"
    assert err["message"] == "topic denied is not allowed for app id itest"
    assert publish(sc, "scoped/secret")[0] == 204  # protected, but explicitly granted
    assert publish(sc, "scoped/allowed", {"ok": True})[0] == 204
    app.wait_for(on("/allowed"))
    subs = orjson.loads(sc.request("GET", "/v1.0/metadata")[2])["subscriptions"]
    topics = {(s["pubsubname"], s["topic"]) for s in subs}
    assert ("scoped", "allowed") in topics and ("scoped", "denied") not in topics
    assert {s["type"] for s in subs} == {"DECLARATIVE", "PROGRAMMATIC"}


def test_cel_routing(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    publish(sc, "mem/routed", {"kind": "widget"})
    publish(sc, "mem/routed", {"kind": "gadget"})
    assert orjson.loads(app.wait_for(on("/widgets"))[0].body)["data"] == {"kind": "widget"}
    assert orjson.loads(app.wait_for(on("/others"))[0].body)["data"] == {"kind": "gadget"}


def test_garbage_answers_are_retried_then_dead_lettered(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    publish(sc, "mem/bad", {"poison": "garbage"})
    dead = app.wait_for(lambda r: r.path == "/dead" and b"garbage" in r.body)[0]
    assert len([r for r in app.requests if r.path == "/bad"]) == 4  # first attempt + 3 retries
    ce = orjson.loads(dead.body)
    assert ce["topic"] == "bad" and ce["data"] == {"poison": "garbage"}  # the original message


def test_hung_app_is_timed_out_then_dead_lettered(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    start = time.monotonic()
    publish(sc, "mem/hang", {"poison": "hang"})
    app.wait_for(lambda r: r.path == "/dead" and b"hang" in r.body, timeout=5)
    assert time.monotonic() - start < 2.5  # 4 attempts of 300 ms, not 4 x 2 s


def test_raw_payload(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    assert publish(sc, "mem/raw?metadata.rawPayload=true", b"\x00raw bytes", "application/octet-stream")[0] == 204
    ce = orjson.loads(app.wait_for(on("/raw"))[0].body)
    assert base64.b64decode(ce["data_base64"]) == b"\x00raw bytes"


def test_bulk_publish_and_bulk_subscribe(env: tuple[App, Sidecar]) -> None:
    app, sc = env
    entries = [{"entryId": str(i), "event": {"n": i}, "contentType": "application/json"} for i in range(7)]
    status, _, _ = sc.request("POST", "/v1.0-alpha1/publish/bulk/mem/bulk", orjson.dumps(entries))
    assert status == 204
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = [e["event"]["data"]["n"] for r in app.requests if r.path == "/bulk"
               for e in orjson.loads(r.body)["entries"]]
        if len(got) >= 7:
            break
        time.sleep(0.05)
    assert sorted(got) == list(range(7))
    first = orjson.loads(next(r for r in app.requests if r.path == "/bulk").body)
    assert first["type"] == "com.dapr.event.sent.bulk" and first["topic"] == "bulk"


@pytest.mark.parametrize("entries, code", [
    ([{"entryId": "1", "event": 1, "contentType": "application/json"},
      {"entryId": "1", "event": 2, "contentType": "application/json"}], "ERR_PUBSUB_EVENTS_SER"),
    ([{"entryId": "1", "event": 1, "contentType": "image/png"}], "ERR_PUBSUB_EVENTS_SER"),
    ({"not": "a list"}, "ERR_PUBSUB_EVENTS_SER"),
])
def test_bad_bulk_publish(env: tuple[App, Sidecar], entries: Any, code: str) -> None:
    _, sc = env
    status, _, body = sc.request("POST", "/v1.0-alpha1/publish/bulk/mem/orders", orjson.dumps(entries))
    assert status == 400 and orjson.loads(body)["errorCode"] == code
