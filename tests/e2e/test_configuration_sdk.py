"""The official SDK's configuration calls against pydaprd with Redis and PostgreSQL stores."""
from __future__ import annotations

import json
import threading
import uuid

import pytest

from pydapr.testing import Sidecar, require_server
from pydapr.testing.recording_app import RecordingApp

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: configstore}
spec:
  type: configuration.redis
  version: v1
  metadata:
  - {name: redisHost, value: "127.0.0.1:6379"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pgconfig}
spec:
  type: configuration.postgresql
  version: v1
  metadata:
  - {name: connectionString, value: "host=127.0.0.1 user=postgres dbname=test"}
  - {name: table, value: pydapr_e2e_config}
"""

PG_SETUP = """
CREATE TABLE IF NOT EXISTS pydapr_e2e_config (
  key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, version VARCHAR NOT NULL, metadata JSON);
CREATE OR REPLACE FUNCTION pydapr_e2e_config_event() RETURNS TRIGGER AS $$
  DECLARE data json;
  BEGIN
    IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
    PERFORM pg_notify('pydapr_e2e_config', json_build_object(
      'table', TG_TABLE_NAME, 'action', TG_OP, 'data', data)::text);
    RETURN NULL;
  END; $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS pydapr_e2e_config_trigger ON pydapr_e2e_config;
CREATE TRIGGER pydapr_e2e_config_trigger AFTER INSERT OR UPDATE OR DELETE ON pydapr_e2e_config
  FOR EACH ROW EXECUTE PROCEDURE pydapr_e2e_config_event();
"""


def _pg(sql: str, *args: object) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()
    asyncio.run(run())


@pytest.fixture(scope="module")
def app():
    with RecordingApp() as a:
        yield a


@pytest.fixture(scope="module")
def sidecar_up(app):
    require_server("redis")
    require_server("postgres")
    _pg(PG_SETUP)
    with Sidecar(app_id="cfgapp", resources=RESOURCES, app_port=app.port) as sc:
        yield sc


@pytest.fixture
def sc(sidecar_up, sdk_for):
    return sdk_for(sidecar_up)


@pytest.fixture
def rds():
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    yield client
    client.close()


def test_sdk_get_configuration_reads_value_and_version(sc, rds):
    from dapr.clients import DaprClient
    k1, k2 = f"cfg-{uuid.uuid4().hex}", f"cfg-{uuid.uuid4().hex}"
    rds.set(k1, "blue||v3")
    rds.set(k2, "plain")
    with DaprClient() as client:
        resp = client.get_configuration("configstore", [k1, k2, "cfg-missing-" + k1])
    assert set(resp.items) == {k1, k2}
    assert (resp.items[k1].value, resp.items[k1].version) == ("blue", "v3")
    assert (resp.items[k2].value, resp.items[k2].version) == ("plain", "")


def test_sdk_subscribe_streams_changes_until_unsubscribed(sc, rds):
    from dapr.clients import DaprClient
    key = f"cfg-{uuid.uuid4().hex}"
    got: list[tuple[str, str, str]] = []
    changed = threading.Event()

    def handler(sub_id, resp):
        for k, item in resp.items.items():
            got.append((sub_id, k, item.value))
        changed.set()

    with DaprClient() as client:
        sub_id = client.subscribe_configuration("configstore", [key], handler)
        assert sub_id
        rds.set(key, "v1||1")
        assert changed.wait(10), "no change reached the SDK's stream"
        assert got[0] == (sub_id, key, "v1")
        assert client.unsubscribe_configuration("configstore", sub_id) is True
        import grpc
        with pytest.raises(grpc.RpcError) as info:
            client.unsubscribe_configuration("configstore", sub_id)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "no such subscription" in info.value.details()


def test_http_subscribe_posts_changes_to_the_app(sc, rds, app):
    key = f"cfg-{uuid.uuid4().hex}"
    status, _, body = sc.request("GET",
                                 f"/v1.0-alpha1/configuration/configstore/subscribe?key={key}")
    assert status == 200, body
    sub_id = json.loads(body)["id"]
    rds.set(key, "on||7")
    [call] = app.wait_for(lambda r: r.path == f"/configuration/configstore/{key}")
    assert call.method == "POST"
    assert json.loads(call.body) == {"id": sub_id, "items": {
        key: {"value": "on", "version": "7", "metadata": {}}}}
    status, _, body = sc.request("GET", f"/v1.0/configuration/configstore/{sub_id}/unsubscribe")
    assert (status, json.loads(body)) == (200, {"ok": True})
    status, _, body = sc.request("GET", f"/v1.0/configuration/configstore/{sub_id}/unsubscribe")
    assert status == 500 and json.loads(body)["ok"] is False


def test_http_get_and_errors(sc, rds):
    key = f"cfg-{uuid.uuid4().hex}"
    rds.set(key, "x||1")
    status, _, body = sc.request("GET", f"/v1.0/configuration/configstore?key={key}")
    assert status == 200
    assert json.loads(body) == {key: {"value": "x", "version": "1", "metadata": {}}}
    status, _, body = sc.request("GET", "/v1.0/configuration/configstore?key=cfg-none-" + key)
    assert (status, body) == (204, b"")
    status, _, body = sc.request("GET", "/v1.0/configuration/nope?key=a")
    assert status == 400 and json.loads(body)["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_FOUND"


def test_sdk_postgres_store_get_and_notify(sc):
    from dapr.clients import DaprClient
    key = f"pg-{uuid.uuid4().hex}"
    _pg("INSERT INTO pydapr_e2e_config VALUES ($1, 'red', '1', '{\"team\": \"core\"}')", key)
    changed = threading.Event()
    got = []

    def handler(sub_id, resp):
        got.extend((k, i.value, i.version) for k, i in resp.items.items())
        changed.set()

    with DaprClient() as client:
        resp = client.get_configuration("pgconfig", [key])
        item = resp.items[key]
        assert (item.value, item.version, dict(item.metadata)) == ("red", "1", {"team": "core"})
        sub_id = client.subscribe_configuration("pgconfig", [key], handler,
                                                {"pgNotifyChannel": "pydapr_e2e_config"})
        _pg("UPDATE pydapr_e2e_config SET value = 'green', version = '2' WHERE key = $1", key)
        assert changed.wait(10), "the NOTIFY did not reach the SDK's stream"
        assert got[0] == (key, "green", "2")
        assert client.unsubscribe_configuration("pgconfig", sub_id)
    _pg("DELETE FROM pydapr_e2e_config WHERE key = $1", key)


def test_grpc_get_unknown_store_is_invalid_argument(sc):
    import grpc

    from dapr.clients import DaprClient
    with DaprClient() as client, pytest.raises(grpc.RpcError) as info:
        client.get_configuration("nope", ["a"])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_async_sdk_get_configuration(sc, rds):
    from dapr.aio.clients import DaprClient
    key = f"cfg-{uuid.uuid4().hex}"
    rds.set(key, "async||2")
    async with DaprClient() as client:
        resp = await client.get_configuration("configstore", [key])
    assert (resp.items[key].value, resp.items[key].version) == ("async", "2")



def test_grpc_stream_end_releases_the_subscription(sc, rds):
    import time

    import grpc

    from dapr.proto.runtime.v1 import configuration_pb2 as pb
    from dapr.proto.runtime.v1 import dapr_pb2_grpc
    key = f"cfg-{uuid.uuid4().hex}"
    channel_name = f"__keyspace@0__:{key}"

    def watchers() -> int:
        return dict(rds.pubsub_numsub(channel_name))[channel_name]

    def released() -> None:
        deadline = time.monotonic() + 5
        while watchers():
            assert time.monotonic() < deadline, "the subscription kept its Redis watch"
            time.sleep(0.05)
    with grpc.insecure_channel(f"127.0.0.1:{sc.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        req = pb.SubscribeConfigurationRequest(store_name="configstore", keys=[key])
        call = stub.SubscribeConfiguration(req)
        first = next(call)
        assert first.id and not first.items  # the first message carries only the id
        assert watchers() == 1
        call.cancel()
        released()  # the sidecar saw the stream end and released the watch
        with pytest.raises(grpc.RpcError, match="no such subscription"):
            stub.UnsubscribeConfiguration(pb.UnsubscribeConfigurationRequest(
                store_name="configstore", id=first.id))
        call = stub.SubscribeConfiguration(req)
        sub_id = next(call).id
        unsub = pb.UnsubscribeConfigurationRequest(store_name="configstore", id=sub_id)
        assert stub.UnsubscribeConfiguration(unsub).ok
        assert list(call) == []  # unsubscribing ends the stream
        released()
