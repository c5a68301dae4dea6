"""Lock, configuration and bindings on a sidecar with no such components and no app."""
from __future__ import annotations

import json

import pytest

from pydapr.testing import Sidecar


@pytest.fixture(scope="module")
def bare():
    with Sidecar(app_id="bare", resources="") as sc:
        yield sc


@pytest.mark.parametrize("method, path, body, status, code", [
    ("POST", "/v1.0-alpha1/lock/any", {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5},
     500, "ERR_LOCK_STORE_NOT_CONFIGURED"),
    ("POST", "/v1.0-alpha1/unlock/any", {"resourceId": "r", "lockOwner": "o"},
     500, "ERR_LOCK_STORE_NOT_CONFIGURED"),
    ("GET", "/v1.0/configuration/any?key=a", None, 500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"),
    ("GET", "/v1.0/configuration/any/subscribe?key=a", None, 500, "ERR_APP_CHANNEL_NIL"),
    ("GET", "/v1.0/configuration/any/x/unsubscribe", None, 500,
     "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"),
    ("PUT", "/v1.0/bindings/any", {"operation": "create", "data": 1}, 500,
     "ERR_INVOKE_OUTPUT_BINDING"),
])
def test_not_configured(bare, method, path, body, status, code):
    got, _, out = bare.request(method, path, None if body is None else json.dumps(body).encode())
    assert (got, json.loads(out)["errorCode"]) == (status, code)
