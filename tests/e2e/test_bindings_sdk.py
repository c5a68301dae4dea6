"""Bindings end to end: the SDK's invoke_binding on real servers, input events reaching an app."""
from __future__ import annotations

import json
import uuid

import pytest

from pydapr.testing import Sidecar, require_server
from pydapr.testing.recording_app import RecordingApp

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: tick}
spec:
  type: bindings.cron
  version: v1
  metadata:
  - {name: schedule, value: "@every 1s"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: unwanted}
spec:
  type: bindings.cron
  version: v1
  metadata:
  - {name: schedule, value: "@every 1s"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mqttbind}
spec:
  type: bindings.mqtt3
  version: v1
  metadata:
  - {name: url, value: "tcp://127.0.0.1:1883"}
  - {name: topic, value: "pydapr/e2e/%(run)s"}
  - {name: consumerID, value: "pydapr-e2e-%(run)s"}
  - {name: route, value: /mqtt-events}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: rabbitbind}
spec:
  type: bindings.rabbitmq
  version: v1
  metadata:
  - {name: host, value: "amqp://guest:guest@127.0.0.1:5672"}
  - {name: queueName, value: "pydapr-e2e-%(run)s"}
  - {name: deleteWhenUnused, value: "true"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: files}
spec:
  type: bindings.localstorage
  version: v1
  metadata:
  - {name: rootPath, value: "%(root)s"}
  - {name: direction, value: output}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisbind}
spec:
  type: bindings.redis
  version: v1
  metadata:
  - {name: redisHost, value: "127.0.0.1:6379"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pgbind}
spec:
  type: bindings.postgresql
  version: v1
  metadata:
  - {name: connectionString, value: "host=127.0.0.1 user=postgres dbname=test"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: web}
spec:
  type: bindings.http
  version: v1
  metadata:
  - {name: url, value: "http://127.0.0.1:%(web)s/api"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: tinyweb}
spec:
  type: bindings.http
  version: v1
  metadata:
  - {name: url, value: "http://127.0.0.1:%(web)s/api"}
  - {name: maxResponseBodySize, value: "8"}
"""


@pytest.fixture(scope="module")
def app():
    routes = {"OPTIONS /tick": 200, "OPTIONS /mqtt-events": 405, "OPTIONS /rabbitbind": 200}
    with RecordingApp(routes) as a:
        yield a


@pytest.fixture(scope="module")
def web():
    with RecordingApp({"GET /api/items": (200, b'{"items": [1, 2]}'),
                       "POST /api/fail": (503, b"down")}) as w:
        yield w


@pytest.fixture(scope="module")
def sidecar_up(app, web, tmp_path_factory):
    for name in ("redis", "postgres", "rabbitmq", "mqtt"):
        require_server(name)
    root = tmp_path_factory.mktemp("files")
    run = uuid.uuid4().hex[:12]
    resources = RESOURCES % {"root": root, "run": run, "web": web.port}
    with Sidecar(app_id="bindapp", resources=resources, app_port=app.port,
                 env={"APP_API_TOKEN": "app-token-e2e"}) as sc:
        sc.root, sc.run = root, run
        sc.wait("/v1.0/healthz")
        yield sc


@pytest.fixture
def sc(sidecar_up, sdk_for):
    return sdk_for(sidecar_up)


def test_cron_ticks_reach_the_app_that_asked(sc, app):
    ticks = app.wait_for(lambda r: r.method == "POST" and r.path == "/tick", count=2, timeout=10)
    assert ticks[0].body == b""
    assert ticks[0].headers["content-type"] == "application/json"
    assert ticks[0].headers["readtimeutc"].endswith("+0000 UTC")
    assert ticks[0].headers["timezone"] == "Local"
    assert ticks[0].headers["dapr-api-token"] == "app-token-e2e"  # APP_API_TOKEN on every call
    probe = next(r for r in app.requests if r.method == "OPTIONS" and r.path == "/tick")
    assert probe.headers["dapr-api-token"] == "app-token-e2e"
    assert any(r.method == "OPTIONS" and r.path == "/unwanted" for r in app.requests)
    assert not any(r.method == "POST" and r.path == "/unwanted" for r in app.requests)


def test_mqtt_output_reaches_the_app_through_mqtt_input(sc, app):
    from dapr.clients import DaprClient
    payload = f"hello-{uuid.uuid4().hex}"
    with DaprClient() as client:
        client.invoke_binding("mqttbind", "create", payload)
    [event] = app.wait_for(lambda r: r.path == "/mqtt-events" and r.body == payload.encode())
    assert event.headers["topic"] == f"pydapr/e2e/{sc.run}"


def test_rabbitmq_output_reaches_the_app_through_rabbitmq_input(sc, app):
    from dapr.clients import DaprClient
    body = json.dumps({"order": uuid.uuid4().hex})
    with DaprClient() as client:
        client.invoke_binding("rabbitbind", "create", body)
    app.wait_for(lambda r: r.path == "/rabbitbind" and r.body == body.encode())


def test_sdk_localstorage_round_trip(sc):
    from dapr.clients import DaprClient
    with DaprClient() as client:
        resp = client.invoke_binding("files", "create", "hello file", {"fileName": "a/b.txt"})
        assert json.loads(resp.data) == {"fileName": "a/b.txt"}
        assert (sc.root / "a" / "b.txt").read_bytes() == b"hello file"
        got = client.invoke_binding("files", "get", "", {"fileName": "a/b.txt"})
        assert got.data == b"hello file"
        assert "a/b.txt" in json.loads(client.invoke_binding("files", "list").data)
        client.invoke_binding("files", "delete", "", {"fileName": "a/b.txt"})
        assert not (sc.root / "a" / "b.txt").exists()


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../x", "link/x.txt"])
def test_localstorage_refuses_names_outside_the_root(sc, name):
    (sc.root / "link").unlink(missing_ok=True)
    outside = sc.root.parent / f"outside-{uuid.uuid4().hex}"
    outside.mkdir()
    (sc.root / "link").symlink_to(outside)
    body = json.dumps({"operation": "create", "data": "x", "metadata": {"fileName": name}})
    status, _, out = sc.request("POST", "/v1.0/bindings/files", body.encode())
    err = json.loads(out)
    assert (status, err["errorCode"]) == (500, "ERR_INVOKE_OUTPUT_BINDING")
    assert str(sc.root) not in err["message"]
    assert list(outside.iterdir()) == []
    assert not (sc.root.parent / "escape.txt").exists()


def test_sdk_redis_binding(sc):
    from dapr.clients import DaprClient
    key = f"bind-{uuid.uuid4().hex}"
    with DaprClient() as client:
        client.invoke_binding("redisbind", "create", b"v1", {"key": key, "ttlInSeconds": "60"})
        assert client.invoke_binding("redisbind", "get", "", {"key": key}).data == b"v1"
        client.invoke_binding("redisbind", "delete", "", {"key": key})
        assert client.invoke_binding("redisbind", "get", "", {"key": key}).data == b""


def test_sdk_postgres_binding_binds_parameters(sc):
    from dapr.clients import DaprClient
    table = f"pydapr_bind_{uuid.uuid4().hex[:10]}"
    hostile = "x'); DROP TABLE " + table + "; --"
    with DaprClient() as client:
        client.invoke_binding("pgbind", "exec", "",
                              {"sql": f"CREATE TABLE {table} (id int, name text)"})
        resp = client.invoke_binding("pgbind", "exec", "", {
            "sql": f"INSERT INTO {table} VALUES ($1, $2), ($3, $4)",
            "params": json.dumps([1, "ann", 2, hostile])})
        assert resp.binding_metadata["rows-affected"] == "2"
        rows = client.invoke_binding("pgbind", "query", "", {
            "sql": f"SELECT id, name FROM {table} WHERE id >= $1 ORDER BY id", "params": "[1]"})
        assert json.loads(rows.data) == [[1, "ann"], [2, hostile]]
        client.invoke_binding("pgbind", "exec", "", {"sql": f"DROP TABLE {table}"})


def test_http_binding_get_and_error_status(sc, web):
    status, headers, body = sc.request("POST", "/v1.0/bindings/web", json.dumps(
        {"operation": "get", "metadata": {"path": "items", "x-trace": "t1"}}).encode())
    assert (status, json.loads(body)) == (200, {"items": [1, 2]})
    assert headers["metadata.statusCode"] == "200"
    [call] = web.wait_for(lambda r: r.path == "/api/items")
    assert call.headers["x-trace"] == "t1"
    status, _, body = sc.request("POST", "/v1.0/bindings/web", json.dumps(
        {"operation": "create", "data": {"a": 1}, "metadata": {"path": "/fail"}}).encode())
    assert status == 500 and "received status code 503" in json.loads(body)["message"]
    [call] = web.wait_for(lambda r: r.path == "/api/fail")
    assert json.loads(call.body) == {"a": 1}
    status, _, body = sc.request("POST", "/v1.0/bindings/tinyweb", json.dumps(
        {"operation": "get", "metadata": {"path": "items"}}).encode())
    assert status == 500 and "larger than 8 bytes" in json.loads(body)["message"]


@pytest.mark.parametrize("body, status, code", [
    (b"{nope", 400, "ERR_MALFORMED_REQUEST"),
    (b"", 400, "ERR_MALFORMED_REQUEST"),
    (json.dumps({"operation": "create", "metadata": {"key": 1}}).encode(), 400,
     "ERR_MALFORMED_REQUEST"),
    (json.dumps({"data": "x"}).encode(), 500, "ERR_INVOKE_OUTPUT_BINDING"),
    (json.dumps({"operation": "explode"}).encode(), 500, "ERR_INVOKE_OUTPUT_BINDING"),
])
def test_http_bad_requests(sc, body, status, code):
    got, _, out = sc.request("POST", "/v1.0/bindings/redisbind", body)
    assert (got, json.loads(out)["errorCode"]) == (status, code)


def test_unknown_and_input_only_bindings_are_not_invokable(sc):
    import grpc

    from dapr.clients import DaprClient
    with DaprClient() as client:
        for name in ("nope", "tick"):
            with pytest.raises(grpc.RpcError) as info:
                client.invoke_binding(name, "create", "x")
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert f"couldn't find output binding {name}" in info.value.details()
