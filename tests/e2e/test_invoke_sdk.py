"""The official SDK's ``DaprClient().invoke_method`` through two pydaprd sidecars to an app."""
from __future__ import annotations

import asyncio
import json

import pytest

from pydapr.testing import Sidecar
from pydapr.testing.echoapp import EchoApp


def invoke(client, *args, **kwargs):
    """``client.invoke_method``, then close the event loop the SDK creates per call and leaves open."""
    try:
        return client.invoke_method(*args, **kwargs)
    finally:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def pair(tmp_path):
    home = str(tmp_path / "home")
    with EchoApp() as app:
        callee = Sidecar(app_id="sdk-callee", app_port=app.port, home=home,
                         env={"APP_API_TOKEN": "callee-token"})
        caller = Sidecar(app_id="sdk-caller", home=home, env={"DAPR_API_TOKEN": "caller-token"})
        try:
            for sc in (callee, caller):
                sc.start()
                sc.wait("/v1.0/healthz")
            yield caller, app
        finally:
            caller.stop()
            callee.stop()
            for sc in (caller, callee):
                sc._tmp.cleanup()


def _point_sdk_at(monkeypatch, sc: Sidecar, token: str) -> None:
    from dapr.conf import settings
    for k, v in sc.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DAPR_API_TOKEN", token)
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sc.http_port)
    monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sc.grpc_port)
    monkeypatch.setattr(settings, "DAPR_API_TOKEN", token)
    monkeypatch.setattr(settings, "DAPR_API_METHOD_INVOCATION_PROTOCOL", "http")


def test_invoke_method_over_http(pair, monkeypatch):
    from dapr.clients import DaprClient
    caller, app = pair
    _point_sdk_at(monkeypatch, caller, "caller-token")
    with DaprClient() as client:
        resp = invoke(client, "sdk-callee", "orders/42", data=b'{"qty": 3}',
                      content_type="application/json", http_verb="POST",
                      http_querystring=(("expand", "lines"),), metadata=(("x-tenant", "acme"),))
        seen = json.loads(resp.data)
        assert resp.status_code == 200
        assert seen["method"] == "POST" and seen["path"] == "/orders/42"
        assert seen["query"] == "expand=lines" and seen["body"] == '{"qty": 3}'
        assert seen["headers"]["x-tenant"] == "acme"
        assert seen["headers"]["dapr-caller-app-id"] == "sdk-caller"
        assert seen["header_lists"]["dapr-api-token"] == ["callee-token"]
        resp = invoke(client, "sdk-callee", "status/201", http_verb="GET")
        assert resp.status_code == 201
