"""The official SDK's try_lock/unlock against pydaprd with lock.redis and lock.in-memory."""
from __future__ import annotations

import json
import time
import uuid

import grpc
import pytest

from pydapr.testing import Sidecar, require_server

pytestmark = pytest.mark.filterwarnings("ignore:The Distributed Lock API is an Alpha")

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redislock}
spec:
  type: lock.redis
  version: v1
  metadata:
  - {name: redisHost, value: "127.0.0.1:6379"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: memlock}
spec:
  type: lock.in-memory
  version: v1
"""


@pytest.fixture(scope="module")
def sidecar_up():
    require_server("redis")
    with Sidecar(app_id="lockapp", resources=RESOURCES) as sc:
        yield sc


@pytest.fixture
def sc(sidecar_up, sdk_for):
    return sdk_for(sidecar_up)


@pytest.mark.parametrize("store", ["redislock", "memlock"])
def test_sdk_lock_owner_rules(sc, store):
    from dapr.clients import DaprClient
    from dapr.clients.grpc._response import UnlockResponseStatus
    res = f"order-{uuid.uuid4().hex}"
    with DaprClient() as client:
        assert client.try_lock(store, res, "alice", 30).success
        assert not client.try_lock(store, res, "bob", 30).success
        others = UnlockResponseStatus.lock_belongs_to_others
        assert client.unlock(store, res, "bob").status == others
        assert client.unlock(store, res, "alice").status == UnlockResponseStatus.success
        assert client.unlock(store, res, "alice").status == UnlockResponseStatus.lock_does_not_exist
        with client.try_lock(store, res, "bob", 30) as lock:
            assert lock
            assert not client.try_lock(store, res, "alice", 30).success
        assert client.try_lock(store, res, "alice", 30).success  # released by the with-block


@pytest.mark.parametrize("store", ["redislock", "memlock"])
def test_lock_expires(sc, store):
    from dapr.clients import DaprClient
    res = f"exp-{uuid.uuid4().hex}"
    with DaprClient() as client:
        assert client.try_lock(store, res, "alice", 1).success
        deadline = time.monotonic() + 5
        while not client.try_lock(store, res, "bob", 30).success:
            assert time.monotonic() < deadline, "the lock never expired"
            time.sleep(0.1)


def test_redis_key_is_prefixed_with_app_id(sc):
    import redis
    res = f"pfx-{uuid.uuid4().hex}"
    status, _, body = sc.request("POST", "/v1.0-alpha1/lock/redislock", json.dumps(
        {"resourceId": res, "lockOwner": "o", "expiryInSeconds": 30}).encode())
    assert (status, json.loads(body)) == (200, {"success": True})
    with redis.Redis(host="127.0.0.1", port=6379) as r:
        assert r.get(f"lock||lockapp||{res}") == b"o"
        assert r.pttl(f"lock||lockapp||{res}") > 25000


@pytest.mark.parametrize("body, message", [
    ({"lockOwner": "o", "expiryInSeconds": 5}, "ResourceId is empty"),
    ({"resourceId": "r", "expiryInSeconds": 5}, "LockOwner is empty"),
    ({"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 0}, "not positive"),
    ({"resourceId": "r", "lockOwner": "o", "expiryInSeconds": "5"}, "whole number"),
    ({"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 2**31}, "larger than"),
    ({"resourceId": "a||b", "lockOwner": "o", "expiryInSeconds": 5}, "can't contain"),
])
def test_http_lock_validation(sc, body, message):
    status, _, out = sc.request("POST", "/v1.0-alpha1/lock/memlock", json.dumps(body).encode())
    err = json.loads(out)
    assert (status, err["errorCode"]) == (400, "ERR_MALFORMED_REQUEST")
    assert message in err["message"]


def test_http_unknown_store_and_bad_json(sc):
    status, _, out = sc.request("POST", "/v1.0-alpha1/unlock/nope",
                                json.dumps({"resourceId": "r", "lockOwner": "o"}).encode())
    assert (status, json.loads(out)["errorCode"]) == (400, "ERR_LOCK_STORE_NOT_FOUND")
    status, _, out = sc.request("POST", "/v1.0-alpha1/lock/memlock", b"{not json")
    assert (status, json.loads(out)["errorCode"]) == (400, "ERR_MALFORMED_REQUEST")


def test_grpc_unknown_store_is_invalid_argument(sc):
    from dapr.clients import DaprClient
    with DaprClient() as client, pytest.raises(grpc.RpcError) as info:
        client.try_lock("nope", "r", "o", 5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

