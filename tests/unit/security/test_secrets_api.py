"""api.secrets: routes, errors, scoping (K0 to K3), gRPC, secretKeyRef resolution."""
from __future__ import annotations

import json
import logging

import grpc
import pytest

from pydapr import hookimpl
from pydapr.errors import ConfigError, StartupError
from pydapr.kinds.secretstores import SecretStore
from pydapr.plugins.secrets import SecretScope, parse_scopes
from pydapr.registry import ComponentType
from pydapr.resources import Configuration


class _EchoStore(SecretStore):
    """Answers the request metadata as the secret; ``fail`` raises; ``empty`` has no data."""

    async def init(self, metadata):
        pass

    async def get_secret(self, name, metadata):
        if name == "fail":
            raise RuntimeError("backend is down")
        return {} if name == "empty" else {name: json.dumps(metadata, sort_keys=True)}

    async def bulk_get_secret(self, metadata):
        return {n: {n: "v"} for n in ("a", "b", "c", "secret-x")}


class _EchoStorePlugin:
    @hookimpl
    def pydapr_component_types(self):
        return [ComponentType("secretstores.echo", "v1", _EchoStore)]


STORES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: echo}
spec: {type: secretstores.echo, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: allowlisted}
spec: {type: secretstores.echo, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: denydefault}
spec: {type: secretstores.echo, version: v1}
"""

SCOPES = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: scopes}
spec:
  secrets:
    scopes:
    - {storeName: allowlisted, defaultAccess: deny, allowedSecrets: [a], deniedSecrets: [a, b]}
    - {storeName: denydefault, defaultAccess: DeNy, deniedSecrets: [b]}
    - {storeName: echo, deniedSecrets: [b]}
"""


@pytest.fixture
async def rt(runtime):
    return await runtime(config=SCOPES, resources=STORES, plugins=(_EchoStorePlugin(),))


@pytest.mark.parametrize("scope, key, allowed", [
    (None, "anything", True),                                                   # K0
    (SecretScope(True, frozenset({"a"}), frozenset({"a"})), "a", True),          # K1: list alone
    (SecretScope(False, frozenset({"a"})), "b", False),                         # K1
    (SecretScope(False, frozenset(), frozenset({"b"})), "b", False),             # K2
    (SecretScope(True, frozenset(), frozenset({"b"})), "c", False),              # K3 deny
    (SecretScope(False, frozenset(), frozenset({"b"})), "c", True),              # K3 allow
    (SecretScope(False, frozenset({"A"})), "a", False),                         # case-sensitive
])
def test_scope_rules(scope, key, allowed):
    assert (scope is None or scope.allows(key)) is allowed


@pytest.mark.parametrize("access, deny", [("deny", True), ("DENY", True), ("Allow", False),
                                          ("", False), (None, False)])
def test_default_access_is_case_insensitive(access, deny):
    cfg = Configuration(spec={"secrets": {"scopes": [{"storeName": "s", "defaultAccess": access}]}})
    assert parse_scopes(cfg)["s"].default_deny is deny


@pytest.mark.parametrize("entry, message", [
    ({"defaultAccess": "deny"}, "needs a 'storeName'"),
    ({"storeName": "s", "defaultAccess": "denied"}, "must be 'allow' or 'deny'"),
    ({"storeName": "s", "allowedSecrets": "a"}, "allowedSecrets: must be a list"),
    ({"storeName": "s", "deniedSecrets": [1]}, "deniedSecrets: must be a list"),
])
def test_bad_scopes_stop_startup(entry, message):
    cfg = Configuration(source="cfg.yaml", spec={"secrets": {"scopes": [entry]}})
    with pytest.raises(ConfigError, match=message):
        parse_scopes(cfg)


def test_one_store_twice_stops_startup():
    cfg = Configuration(spec={"secrets": {"scopes": [{"storeName": "s"}, {"storeName": "s"}]}})
    with pytest.raises(ConfigError, match="has two entries"):
        parse_scopes(cfg)


async def test_get_passes_request_metadata(rt, call):
    resp = await call(rt, "GET", "/v1.0/secrets/echo/k", query="metadata.version=2&other=x")
    assert resp.status == 200 and json.loads(resp.body) == {"k": '{"version": "2"}'}


async def test_key_is_percent_decoded_once_and_plus_stays(rt, call):
    resp = await call(rt, "GET", "/v1.0/secrets/echo/a%2Bb%3Ac+d")
    assert list(json.loads(resp.body)) == ["a+b:c+d"]


@pytest.mark.parametrize("path, status, code", [
    ("/v1.0/secrets/nope/k", 401, "ERR_SECRET_STORE_NOT_FOUND"),
    ("/v1.0/secrets/echo/fail", 500, "ERR_SECRET_GET"),
    ("/v1.0/secrets/echo/b", 403, "ERR_PERMISSION_DENIED"),
    ("/v1.0/secrets/allowlisted/b", 403, "ERR_PERMISSION_DENIED"),
    ("/v1.0/secrets/denydefault/c", 403, "ERR_PERMISSION_DENIED"),
])
async def test_errors(rt, call, path, status, code):
    resp = await call(rt, "GET", path)
    body = json.loads(resp.body)
    assert (resp.status, body["errorCode"]) == (status, code)
    if code == "ERR_PERMISSION_DENIED":
        store, key = path.split("/")[3:5]
        assert body["message"] == f'access denied by policy to get "{key}" from "{store}"'
    if code == "ERR_SECRET_GET":
        assert "backend is down" in body["message"]


async def test_allowed_and_empty(rt, call):
    assert (await call(rt, "GET", "/v1.0/secrets/allowlisted/a")).status == 200
    assert (await call(rt, "GET", "/v1.0/secrets/echo/empty")).status == 204


@pytest.mark.parametrize("store, names", [
    ("echo", ["a", "c", "secret-x"]), ("allowlisted", ["a"]), ("denydefault", []),
])
async def test_bulk_silently_filters_by_scope(rt, call, store, names):
    resp = await call(rt, "GET", f"/v1.0/secrets/{store}/bulk")
    assert resp.status == 200 and sorted(json.loads(resp.body)) == names


async def test_no_secret_store_configured(runtime, call, grpc_port):
    rt = await runtime()
    resp = await call(rt, "GET", "/v1.0/secrets/any/k")
    code = json.loads(resp.body)["errorCode"]
    assert (resp.status, code) == (500, "ERR_SECRET_STORES_NOT_CONFIGURED")
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, secret_pb2
    async with grpc.aio.insecure_channel(f"127.0.0.1:{await grpc_port(rt)}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dapr_pb2_grpc.DaprStub(ch).GetSecret(
                secret_pb2.GetSecretRequest(store_name="s", key="k"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_grpc_get_and_bulk(rt, grpc_port):
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, secret_pb2
    async with grpc.aio.insecure_channel(f"127.0.0.1:{await grpc_port(rt)}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        got = await stub.GetSecret(secret_pb2.GetSecretRequest(store_name="echo", key="k",
                                                               metadata={"m": "1"}))
        assert dict(got.data) == {"k": '{"m": "1"}'}
        bulk = await stub.GetBulkSecret(secret_pb2.GetBulkSecretRequest(store_name="allowlisted"))
        assert {k: dict(v.secrets) for k, v in bulk.data.items()} == {"a": {"a": "v"}}
        for store, key, code in (("echo", "b", grpc.StatusCode.PERMISSION_DENIED),
                                 ("nope", "k", grpc.StatusCode.INVALID_ARGUMENT),
                                 ("echo", "fail", grpc.StatusCode.INTERNAL)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetSecret(secret_pb2.GetSecretRequest(store_name=store, key=key))
            assert err.value.code() == code


def _secret_refs(tmp_path, key: str = "prefix") -> str:
    (tmp_path / "s.json").write_text(json.dumps({"envprefix": {"prefix": "TOPSECRET_PREFIX_"}}))
    return f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: files}}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - {{name: secretsFile, value: "{tmp_path / 's.json'}"}}
  - {{name: multiValued, value: true}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: env}}
spec:
  type: secretstores.local.env
  version: v1
  metadata:
  - name: prefix
    secretKeyRef: {{name: envprefix, key: {key}}}
auth: {{secretStore: files}}
"""


async def test_secret_key_ref_is_resolved_and_never_logged(runtime, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="pydapr")
    rt = await runtime(resources=_secret_refs(tmp_path),
                       config="kind: Configuration\nmetadata: {name: c}\nspec:\n  secrets:\n"
                              "    scopes: [{storeName: files, defaultAccess: deny}]\n")
    assert rt.component("secretstores", "env").prefix == "TOPSECRET_PREFIX_"  # scopes do not apply
    assert "TOPSECRET" not in caplog.text
    assert rt.blocks["api.secrets"]._boot_cache is None  # nothing kept once started


async def test_secret_key_ref_to_a_missing_key_names_it(runtime, tmp_path, caplog):
    rt = await runtime(resources=_secret_refs(tmp_path, key="nokey"), start=False)
    with pytest.raises(StartupError, match="secret 'envprefix' in secret store 'files' has no key "
                                           "'nokey'") as err:
        await rt.init_components()
    assert "TOPSECRET" not in str(err.value) and "TOPSECRET" not in caplog.text
