"""The official SDK's get_secret / get_bulk_secret against pydaprd, DAPR_API_TOKEN on both sides."""
from __future__ import annotations

import json

import grpc
import pytest

from pydapr.testing import Sidecar

TOKEN = "e2e-token-4f1c9a"

CONFIG = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: secretscope}
spec:
  secrets:
    scopes:
    - {storeName: localsecrets, defaultAccess: allow, deniedSecrets: ["db:password"]}
"""


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secrets")
    secrets_file = folder / "secrets.json"
    secrets_file.write_text(json.dumps({"db": {"user": "admin", "password": "hunter2"},
                                        "apikey": "k-123"}))
    resources = f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: localsecrets}}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - {{name: secretsFile, value: "{secrets_file}"}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: envsecrets}}
spec:
  type: secretstores.local.env
  version: v1
"""
    env = {"DAPR_API_TOKEN": TOKEN, "E2E_SECRET_VAR": "from-env"}
    with Sidecar(app_id="secretsapp", resources=resources, config=CONFIG, env=env) as sc:
        yield sc
        assert "hunter2" not in sc.logs() and TOKEN not in sc.logs()


@pytest.fixture
def sdk(sidecar, monkeypatch):
    """Point the SDK at the sidecar; ``sdk(token)`` sets the SDK's DAPR_API_TOKEN."""
    from dapr.conf import settings
    for k, v in sidecar.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sidecar.http_port)
    monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sidecar.grpc_port)

    def client(token: str | None):
        from dapr.clients import DaprClient
        monkeypatch.setattr(settings, "DAPR_API_TOKEN", token)
        return DaprClient()
    return client


def test_get_secret_and_bulk_with_the_token(sdk):
    with sdk(TOKEN) as client:
        assert client.get_secret("localsecrets", "apikey").secret == {"apikey": "k-123"}
        assert client.get_secret("localsecrets", "db:user").secret == {"db:user": "admin"}
        assert client.get_secret("envsecrets", "E2E_SECRET_VAR").secret == {
            "E2E_SECRET_VAR": "from-env"}
        bulk = client.get_bulk_secret("localsecrets").secrets
        # the scope denies db:password: bulk leaves it out silently
        assert bulk == {"apikey": {"apikey": "k-123"}, "db:user": {"db:user": "admin"}}


def test_scope_denies_a_single_get(sdk):
    with sdk(TOKEN) as client, pytest.raises(grpc.RpcError) as err:
        client.get_secret("localsecrets", "db:password")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'access denied by policy to get "db:password" from "localsecrets"' in err.value.details()


def test_the_sidecars_own_token_is_not_readable_through_the_env_store(sdk):
    with sdk(TOKEN) as client:
        with pytest.raises(grpc.RpcError) as err:
            client.get_secret("envsecrets", "DAPR_API_TOKEN")
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert TOKEN not in err.value.details()
        assert "DAPR_API_TOKEN" not in client.get_bulk_secret("envsecrets").secrets


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_refused_without_the_right_token(sdk, sidecar, token):
    with sdk(token) as client, pytest.raises(grpc.RpcError) as err:
        client.get_secret("localsecrets", "apikey")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status, _, body = sidecar.request("GET", "/v1.0/secrets/localsecrets/apikey",
                                      headers={"dapr-api-token": token} if token else {})
    assert (status, body) == (401, b"invalid api token")


def test_unknown_store_is_invalid_argument_over_grpc_and_401_over_http(sdk, sidecar):
    with sdk(TOKEN) as client, pytest.raises(grpc.RpcError) as err:
        client.get_secret("nosuchstore", "apikey")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, _, body = sidecar.request("GET", "/v1.0/secrets/nosuchstore/apikey",
                                      headers={"dapr-api-token": TOKEN})
    assert status == 401 and json.loads(body)["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND"
