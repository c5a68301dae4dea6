"""The official Python SDK's state calls against pydaprd, once per built-in store."""
from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import pytest
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions

from pydapr.testing import Sidecar, require_server

STORES = {
    "in-memory": ("state.in-memory", [], None),
    "sqlite": ("state.sqlite", [], None),
    "redis": ("state.redis", [("redisHost", "127.0.0.1:6379")], "redis"),
    "postgresql": ("state.postgresql", [("connectionString", "host=127.0.0.1 user=postgres dbname=test"),
                                        ("tableName", "pydapr_e2e_state")], "postgres"),
}


def resources(type_name: str, metadata: list[tuple[str, str]]) -> str:
    items = "".join(f"\n  - name: {k}\n    value: \"{v}\"" for k, v in metadata)
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\n"
            f"spec:\n  type: {type_name}\n  version: v1\n  metadata:{items or ' []'}\n")


@pytest.fixture(scope="module", params=list(STORES))
def sidecar_for(request: pytest.FixtureRequest) -> Any:
    type_name, metadata, server = STORES[request.param]
    if server:
        require_server(server)
    # a fresh app id per run: keys never collide with an earlier run on a shared server
    with Sidecar(app_id=f"sdk-{uuid.uuid4().hex[:8]}", resources=resources(type_name, metadata)) as sc:
        yield request.param, sc


@pytest.fixture
def client(sidecar_for: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from dapr.conf import settings
    _, sc = sidecar_for
    for name, value in sc.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sc.http_port)
    monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sc.grpc_port)
    with DaprClient() as c:
        yield c


def test_sdk_state_calls(sidecar_for: Any, client: DaprClient) -> None:
    store_kind, _ = sidecar_for
    client.save_state("store", "order", json.dumps({"id": 1, "status": "new"}))
    got = client.get_state("store", "order")
    assert json.loads(got.data) == {"id": 1, "status": "new"} and got.etag

    # optimistic concurrency with the ETag the SDK returned
    client.save_state("store", "order", json.dumps({"id": 1, "status": "paid"}), etag=got.etag)
    with pytest.raises(DaprGrpcError) as stale:
        client.save_state("store", "order", "x", etag=got.etag)
    assert stale.value.code().name == "ABORTED"
    with pytest.raises(DaprGrpcError):
        client.save_state("store", "order", "x",
                          options=StateOptions(concurrency=Concurrency.first_write))
    assert json.loads(client.get_state("store", "order").data)["status"] == "paid"

    client.save_bulk_state("store", [StateItem("a", "1"), StateItem("b", b"\x00\x01")])
    bulk = client.get_bulk_state("store", ["a", "missing", "b"], parallelism=2)
    assert [(i.key, i.data) for i in bulk.items] == [("a", b"1"), ("missing", b""), ("b", b"\x00\x01")]

    client.delete_state("store", "a")
    assert client.get_state("store", "a").data == b""
    with pytest.raises(DaprGrpcError) as wrong:
        client.delete_state("store", "b", etag="1")
    assert wrong.value.code().name == "ABORTED"

    client.execute_state_transaction("store", [
        TransactionalStateOperation(key="t1", data=json.dumps({"city": "oslo", "n": 1})),
        TransactionalStateOperation(key="t2", data=json.dumps({"city": "rome", "n": 2})),
        TransactionalStateOperation(key="b", operation_type=TransactionOperationType.delete),
    ])
    assert client.get_state("store", "b").data == b""
    with pytest.raises(DaprGrpcError):  # a stale etag: the whole transaction is refused
        client.execute_state_transaction("store", [
            TransactionalStateOperation(key="t3", data="3"),
            TransactionalStateOperation(key="t1", data="x", etag="12345")])
    assert client.get_state("store", "t3").data == b""

    query = json.dumps({"filter": {"EQ": {"city": "oslo"}}, "sort": [{"key": "n"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the query API is alpha"
        if store_kind == "redis":
            with pytest.raises(DaprGrpcError) as unsupported:
                client.query_state("store", query)
            assert unsupported.value.error_code() == "DAPR_STATE_QUERYING_NOT_SUPPORTED"
            return
        resp = client.query_state("store", query)
    assert [(r.key, r.json()) for r in resp.results] == [("t1", {"city": "oslo", "n": 1})]
