"""The official Python SDK against pydaprd: publish_event, publish_events, streaming subscribe,
a FastAPI app (dapr.ext.fastapi, on uvicorn) and a gRPC app (dapr.ext.grpc), on every broker."""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import pytest
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import SubscriptionMessage

from pydapr.testing import Sidecar, free_port, require_server

BROKERS = {
    "in-memory": ("pubsub.in-memory", None, {}),
    "sqlite": ("pubsub.sqlite", None, {"pollInterval": "20ms"}),
    "redis": ("pubsub.redis", "redis", {"redisHost": "127.0.0.1:6379"}),
    "rabbitmq": ("pubsub.rabbitmq", "rabbitmq", {"connectionString": "amqp://guest:guest@127.0.0.1:5672/"}),
    "nats": ("pubsub.nats", "nats", {"natsURL": "nats://127.0.0.1:4222"}),
    "mqtt": ("pubsub.mqtt3", "mqtt", {"url": "tcp://127.0.0.1:1883"}),
}


def component(type_name: str, metadata: dict[str, str], name: str = "pubsub", extra: str = "") -> str:
    items = "".join(f"\n  - {{name: {k}, value: \"{v}\"}}" for k, v in metadata.items())
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\n"
            f"spec:\n  type: {type_name}\n  version: v1\n  metadata:{items or ' []'}{extra}\n")


SCOPED = component("pubsub.in-memory", {"publishingScopes": "sdk=open", "subscriptionScopes": "sdk=open"},
                   name="scoped")


def use_sidecar(monkeypatch: pytest.MonkeyPatch, sc: Sidecar) -> None:
    from dapr.conf import settings
    for k, v in sc.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sc.http_port)
    monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sc.grpc_port)


def wait_until(check: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def fastapi_app() -> Iterator[tuple[int, Any, list]]:
    import uvicorn
    from dapr.ext.fastapi import DaprApp
    from fastapi import Body, FastAPI

    app = FastAPI()
    dapr_app = DaprApp(app)
    received: list = []
    port = free_port()

    def subscribe(topic: str) -> None:
        @dapr_app.subscribe(pubsub="pubsub", topic=topic)
        def handler(event: dict = Body()) -> dict:
            received.append(event)
            return {"status": "SUCCESS"}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    yield port, (subscribe, server, thread), received
    server.should_exit = True
    if thread.is_alive():
        thread.join(5)


@pytest.mark.parametrize("broker", list(BROKERS))
def test_fastapi_app_receives_what_the_sdk_publishes(broker: str, fastapi_app: Any, sidecar: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    type_name, server_name, metadata = BROKERS[broker]
    if server_name:
        require_server(server_name)
    from dapr.clients import DaprClient
    port, (subscribe, server, thread), received = fastapi_app
    topic = f"sdk-{broker}-{uuid.uuid4().hex[:8]}"
    subscribe(topic)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn")
    sc = sidecar(app_id="sdk", resources=component(type_name, metadata), app_port=port)
    sc.wait("/v1.0/healthz")
    use_sidecar(monkeypatch, sc)
    with DaprClient() as client:
        client.publish_event("pubsub", topic, json.dumps({"n": 1}), data_content_type="application/json")
        resp = client.publish_events("pubsub", topic, [json.dumps({"n": 2}), json.dumps({"n": 3})],
                                     data_content_type="application/json")
        assert resp.failed_entries == []
    wait_until(lambda: len(received) >= 3, 15, "3 events")
    assert sorted(e["data"]["n"] for e in received) == [1, 2, 3]
    assert {e["source"] for e in received} == {"sdk"} and {e["topic"] for e in received} == {topic}


def test_grpc_app_receives_events(sidecar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dapr.clients import DaprClient
    from dapr.ext.grpc import App
    app = App()
    got: list = []

    @app.subscribe(pubsub_name="pubsub", topic="grpc-orders")
    def orders(event: SubscriptionMessage) -> TopicEventResponse:
        got.append((event.data(), event.source(), event.type(), event.metadata().get("pubsubname")))
        return TopicEventResponse("success")
    port = free_port()
    thread = threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True)
    thread.start()
    try:
        sc = sidecar(app_id="sdk-grpc", resources=component("pubsub.in-memory", {}), app_port=port,
                     args=["--app-protocol", "grpc"])
        sc.wait("/v1.0/healthz")
        use_sidecar(monkeypatch, sc)
        with DaprClient() as client:
            client.publish_event("pubsub", "grpc-orders", json.dumps({"id": 9}),
                                 data_content_type="application/json")
        wait_until(lambda: bool(got), 10, "the gRPC app's event")
        assert got[0][:3] == ({"id": 9}, "sdk-grpc", "com.dapr.event.sent")
    finally:
        app.stop()


def test_streaming_subscription_and_grpc_errors(sidecar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dapr.clients import DaprClient
    from dapr.clients.exceptions import DaprGrpcError
    sc = sidecar(app_id="sdk", resources=component("pubsub.in-memory", {}) + "---\n" + SCOPED)
    use_sidecar(monkeypatch, sc)
    got: list = []

    def handler(message: Any) -> TopicEventResponse:
        got.append(message.data())
        return TopicEventResponse("success")
    with DaprClient() as client:
        close = client.subscribe_with_handler("pubsub", "stream", handler)
        try:
            wait_until(lambda: b"STREAMING" in sc.request("GET", "/v1.0/metadata")[2], 10, "subscription")
            for i in range(3):
                client.publish_event("pubsub", "stream", json.dumps({"i": i}),
                                     data_content_type="application/json")
            wait_until(lambda: len(got) >= 3, 10, "3 streamed events")
            assert sorted(g["i"] for g in got) == [0, 1, 2]
        finally:
            close()
        with pytest.raises(DaprGrpcError) as err:
            client.publish_event("nope", "t", "x")
        assert err.value.error_code() == "DAPR_PUBSUB_NOT_FOUND"
        with pytest.raises(DaprGrpcError) as err:
            client.publish_event("scoped", "closed", "x")
        assert err.value.code().name == "PERMISSION_DENIED"
        with pytest.raises(Exception, match="failed to create subscription for scoped"):
            sub = client.subscribe("scoped", "closed")
            sub.close()


@pytest.mark.parametrize("broker", list(BROKERS))
def test_streaming_subscriptions_on_every_broker(broker: str, sidecar: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``subscribe`` (pull, explicit answers) and ``subscribe_with_handler`` over each broker."""
    type_name, server_name, metadata = BROKERS[broker]
    if server_name:
        require_server(server_name)
    from dapr.clients import DaprClient
    sc = sidecar(app_id="sdk-stream", resources=component(type_name, metadata))
    use_sidecar(monkeypatch, sc)
    pulled_topic, handled_topic = (f"stream-{broker}-{uuid.uuid4().hex[:8]}" for _ in range(2))
    handled: list = []

    def handler(message: Any) -> TopicEventResponse:
        handled.append(message.data())
        return TopicEventResponse("success")

    def streaming(topic: str) -> Callable[[], bool]:
        return lambda: topic.encode() in sc.request("GET", "/v1.0/metadata")[2]
    with DaprClient() as client:
        sub = client.subscribe("pubsub", pulled_topic)
        close = client.subscribe_with_handler("pubsub", handled_topic, handler)
        try:
            wait_until(streaming(pulled_topic), 10, "the pull subscription")
            wait_until(streaming(handled_topic), 10, "the handler subscription")
            for i in range(3):
                client.publish_event("pubsub", handled_topic, json.dumps({"i": i}),
                                     data_content_type="application/json")
            client.publish_event("pubsub", pulled_topic, json.dumps({"pulled": True}),
                                 data_content_type="application/json")
            pulled: list = []
            reader = threading.Thread(target=lambda: pulled.append(sub.next_message()), daemon=True)
            reader.start()
            reader.join(15)
            assert pulled, f"no message pulled from {broker}"
            message = pulled[0]
            assert message.data() == {"pulled": True} and message.topic() == pulled_topic
            assert message.pubsub_name() == "pubsub" and message.source() == "sdk-stream"
            sub.respond_success(message)
            wait_until(lambda: len(handled) >= 3, 15, f"3 handled events from {broker}")
            assert sorted(h["i"] for h in handled) == [0, 1, 2]
        finally:
            sub.close()
            close()
