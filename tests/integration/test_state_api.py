"""The state API of a real pydaprd over HTTP and gRPC: paths, bodies, codes, bad input."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2 as common
from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pydapr.testing import Sidecar

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mem}
spec:
  type: state.in-memory
  version: v1
  metadata: [{name: maxTransactionOperations, value: "5"}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: lite}
spec:
  type: state.sqlite
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: byname}
spec:
  type: state.sqlite
  version: v1
  metadata: [{name: connectionString, value: "%(db)s"}, {name: keyPrefix, value: name}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bare}
spec:
  type: state.sqlite
  version: v1
  metadata: [{name: connectionString, value: "%(db)s"}, {name: KEYPREFIX, value: none},
             {name: tableName, value: bare}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: custom}
spec:
  type: state.sqlite
  version: v1
  metadata: [{name: connectionString, value: "%(db)s"}, {name: keyPrefix, value: shared},
             {name: tableName, value: custom}]
"""


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = tmp_path_factory.mktemp("state") / "shared.db"
    with Sidecar(app_id="myapp", resources=RESOURCES % {"db": db},
                 args=["--max-body-size", "64Ki"]) as sidecar:
        sidecar.db = db
        yield sidecar


def call(sc: Sidecar, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict, Any]:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status, hdrs, data = sc.request(method, path, raw, headers)
    return status, hdrs, (json.loads(data) if data and hdrs.get("content-type") == "application/json"
                          else data)


def error_code(result: tuple[int, dict, Any]) -> tuple[int, str]:
    return result[0], result[2]["errorCode"]


# -- happy paths -------------------------------------------------------------------------


def test_save_get_delete_with_etags(sc: Sidecar) -> None:
    assert call(sc, "POST", "/v1.0/state/mem", [{"key": "k", "value": {"n": 1}}])[0] == 204
    status, hdrs, body = call(sc, "GET", "/v1.0/state/mem/k")
    assert (status, body) == (200, {"n": 1})
    etag = hdrs["ETag"]
    stale = call(sc, "POST", "/v1.0/state/mem", [{"key": "k", "value": 2, "etag": "1"}])
    assert error_code(stale) == (409, "ERR_STATE_SAVE")
    assert call(sc, "POST", "/v1.0/state/mem", [{"key": "k", "value": 2, "etag": etag}])[0] == 204
    assert call(sc, "DELETE", "/v1.0/state/mem/k", headers={"If-Match": etag})[0] == 409
    assert error_code(call(sc, "DELETE", "/v1.0/state/mem/k", headers={"If-Match": "x"})) == \
        (400, "ERR_STATE_DELETE")
    new = call(sc, "GET", "/v1.0/state/mem/k")[1]["ETag"]
    assert call(sc, "DELETE", "/v1.0/state/mem/k", headers={"If-Match": new})[0] == 204
    assert call(sc, "GET", "/v1.0/state/mem/k")[:1] == (204,)


def test_json_values_are_stored_as_json(sc: Sidecar) -> None:
    call(sc, "PUT", "/v1.0/state/lite", [{"key": "s", "value": "text"}])
    status, hdrs, raw = sc.request("GET", "/v1.0/state/lite/s")
    assert (status, raw, hdrs["content-type"]) == (200, b'"text"', "application/json")


def test_first_write_and_query_metadata(sc: Sidecar) -> None:
    body = [{"key": "fw", "value": 1, "options": {"concurrency": "first-write"}}]
    assert call(sc, "POST", "/v1.0/state/mem", body)[0] == 204
    assert call(sc, "POST", "/v1.0/state/mem", body)[0] == 409
    assert call(sc, "POST", "/v1.0/state/mem?metadata.ttlInSeconds=100",
                [{"key": "t", "value": 1}])[0] == 204
    hdrs = call(sc, "GET", "/v1.0/state/mem/t?consistency=strong")[1]
    assert hdrs["metadata.ttlExpireTime"].endswith("Z")


def test_bulk_get(sc: Sidecar) -> None:
    call(sc, "POST", "/v1.0/state/lite", [{"key": "b1", "value": {"a": 1}}, {"key": "b2", "value": 2}])
    status, _, body = call(sc, "POST", "/v1.0/state/lite/bulk",
                           {"keys": ["b2", "missing", "b1"], "parallelism": 2})
    assert status == 200
    assert [(i["key"], i.get("data")) for i in body] == [("b2", 2), ("missing", None),
                                                         ("b1", {"a": 1})]
    assert body[0]["etag"] and "etag" not in body[1]
    assert call(sc, "POST", "/v1.0/state/lite/bulk", {"keys": []})[2] == []


def test_transaction_and_query(sc: Sidecar) -> None:
    ops = {"operations": [
        {"operation": "upsert", "request": {"key": "q1", "value": {"city": "oslo", "n": 2}}},
        {"operation": "upsert", "request": {"key": "q2", "value": {"city": "rome", "n": 1}}},
        {"operation": "upsert", "request": {"key": "q3", "value": {"city": "oslo", "n": 3}}},
        {"operation": "delete", "request": {"key": "q3"}}]}
    assert call(sc, "POST", "/v1.0/state/lite/transaction", ops)[0] == 204
    status, _, body = call(sc, "POST", "/v1.0-alpha1/state/lite/query",
                           {"filter": {"EQ": {"city": "oslo"}}})
    assert status == 200 and [r["key"] for r in body["results"]] == ["q1"]
    assert body["results"][0]["data"] == {"city": "oslo", "n": 2}
    none = call(sc, "POST", "/v1.0-alpha1/state/lite/query", {"filter": {"EQ": {"city": "nowhere"}}})
    assert none[0] == 204
    bad = call(sc, "POST", "/v1.0-alpha1/state/lite/query", {"filter": {"LIKE": {"city": "o"}}})
    assert error_code(bad) == (400, "ERR_MALFORMED_REQUEST")


def test_key_prefixes_in_the_file(sc: Sidecar) -> None:
    for store in ("byname", "bare", "custom"):
        assert call(sc, "POST", f"/v1.0/state/{store}", [{"key": "pk", "value": store}])[0] == 204
    with sqlite3.connect(Path(sc.db)) as db:
        keys = {t: [r[0] for r in db.execute(f"SELECT key FROM {t}")]
                for t in ("state", "bare", "custom")}
    assert keys == {"state": ["byname||pk"], "bare": ["pk"], "custom": ["shared||pk"]}
    home = Path(sc.extra_env["PYDAPR_HOME"]) / "state" / "lite.db"
    with sqlite3.connect(home) as db:
        assert ("myapp||s",) in db.execute("SELECT key FROM state").fetchall()


# -- bad input: the right code, and nothing stored --------------------------------------------


@pytest.mark.parametrize("body, code", [
    (b"[{not json", "ERR_MALFORMED_REQUEST"),
    ([{"key": "ok1", "value": 1}, {"value": 2}], "ERR_MALFORMED_REQUEST"),
    ([{"key": "ok1", "value": 1}, {"key": "a||b", "value": 2}], "ERR_MALFORMED_REQUEST"),
    ([{"key": "ok1", "value": 1, "metadata": {"ttlInSeconds": "soon"}}], "ERR_MALFORMED_REQUEST"),
    ([{"key": "ok1", "value": 1, "options": {"concurrency": "sometimes"}}], "ERR_MALFORMED_REQUEST"),
    ({"key": "ok1"}, "ERR_MALFORMED_REQUEST"),
])
def test_bad_save_stores_nothing(sc: Sidecar, body: Any, code: str) -> None:
    assert error_code(call(sc, "POST", "/v1.0/state/mem", body)) == (400, code)
    assert call(sc, "GET", "/v1.0/state/mem/ok1")[0] == 204


def test_illegal_key_is_a_rich_error(sc: Sidecar) -> None:
    status, _, body = call(sc, "GET", "/v1.0/state/mem/a%7C%7Cb")
    assert status == 400 and body["details"][0]["reason"] == "DAPR_STATE_ILLEGAL_KEY"


def test_unknown_store(sc: Sidecar) -> None:
    status, _, body = call(sc, "GET", "/v1.0/state/nope/k")
    assert (status, body["errorCode"], body["message"]) == (400, "ERR_STATE_STORE_NOT_FOUND",
                                                            "state store nope is not found")
    assert body["details"][0]["reason"] == "DAPR_STATE_NOT_FOUND"


def test_oversize_body_is_refused(sc: Sidecar) -> None:
    big = [{"key": "big", "value": "x" * (70 << 10)}]
    assert error_code(call(sc, "POST", "/v1.0/state/mem", big)) == (413, "ERR_BODY_READ")
    assert call(sc, "GET", "/v1.0/state/mem/big")[0] == 204


def test_bad_transactions_write_nothing(sc: Sidecar) -> None:
    upsert = {"operation": "upsert", "request": {"key": "tx1", "value": 1}}
    unknown = {"operations": [upsert, {"operation": "merge", "request": {"key": "tx2"}}]}
    assert error_code(call(sc, "POST", "/v1.0/state/mem/transaction", unknown)) == \
        (400, "ERR_NOT_SUPPORTED_STATE_OPERATION")
    too_many = {"operations": [upsert] * 6}
    assert error_code(call(sc, "POST", "/v1.0/state/mem/transaction", too_many)) == \
        (400, "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS")
    stale = {"operations": [upsert, {"operation": "delete", "request": {"key": "tx2", "etag": "7"}}]}
    assert error_code(call(sc, "POST", "/v1.0/state/mem/transaction", stale)) == \
        (500, "ERR_STATE_TRANSACTION")
    assert call(sc, "GET", "/v1.0/state/mem/tx1")[0] == 204


def test_no_state_store_configured() -> None:
    with Sidecar(resources="") as bare:
        status, _, body = call(bare, "GET", "/v1.0/state/any/k")
        assert (status, body["errorCode"]) == (500, "ERR_STATE_STORE_NOT_CONFIGURED")


# -- gRPC -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(sc: Sidecar) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{sc.grpc_port}") as channel:
        yield dapr_pb2_grpc.DaprStub(channel)


def reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return info.reason


def test_grpc_round_trip_and_bytes_interop(sc: Sidecar, stub: Any) -> None:
    raw = b"\x00\xffraw"
    stub.SaveState(pb.SaveStateRequest(store_name="lite", states=[common.StateItem(key="g", value=raw)]))
    got = stub.GetState(pb.GetStateRequest(store_name="lite", key="g"))
    assert got.data == raw and got.etag
    assert sc.request("GET", "/v1.0/state/lite/g")[2] == raw
    call(sc, "POST", "/v1.0/state/lite", [{"key": "h", "value": "x"}])
    assert stub.GetState(pb.GetStateRequest(store_name="lite", key="h")).data == b'"x"'
    missing = stub.GetState(pb.GetStateRequest(store_name="lite", key="nothing"))
    assert (missing.data, missing.etag) == (b"", "")
    bulk = stub.GetBulkState(pb.GetBulkStateRequest(store_name="lite", keys=["g", "nothing"]))
    assert [(i.key, i.data) for i in bulk.items] == [("g", raw), ("nothing", b"")]
    stub.DeleteBulkState(pb.DeleteBulkStateRequest(store_name="lite", states=[
        common.StateItem(key="g", etag=common.Etag(value=got.etag)), common.StateItem(key="h")]))
    assert stub.GetState(pb.GetStateRequest(store_name="lite", key="g")).data == b""


def test_grpc_errors(stub: Any) -> None:
    item = common.StateItem(key="ge", value=b"1", etag=common.Etag(value="42"))
    with pytest.raises(grpc.RpcError) as stale:
        stub.SaveState(pb.SaveStateRequest(store_name="mem", states=[item]))
    assert stale.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetState(pb.GetStateRequest(store_name="nope", key="k"))
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(unknown.value) == "DAPR_STATE_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as illegal:
        stub.DeleteState(pb.DeleteStateRequest(store_name="mem", key="a||b"))
    assert reason(illegal.value) == "DAPR_STATE_ILLEGAL_KEY"
    op = pb.TransactionalStateOperation(operationType="merge", request=common.StateItem(key="x"))
    with pytest.raises(grpc.RpcError) as bad_op:
        stub.ExecuteStateTransaction(pb.ExecuteStateTransactionRequest(storeName="mem", operations=[op]))
    assert bad_op.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as big:
        stub.SaveState(pb.SaveStateRequest(store_name="mem", states=[
            common.StateItem(key="huge", value=b"x" * (70 << 10))]))
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.GetState(pb.GetStateRequest(store_name="mem", key="huge")).data == b""
