"""The official SDK's metadata calls against pydaprd (its clients first poll healthz/outbound)."""
from __future__ import annotations

import pytest

from pydapr.testing import Sidecar


@pytest.fixture
def sdk_env(monkeypatch):
    sc = Sidecar(app_id="sdkapp", resources="").start()
    from dapr.conf import settings
    for k, v in sc.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sc.http_port)
    monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sc.grpc_port)
    yield sc
    sc.stop()


def test_get_and_set_metadata(sdk_env):
    from dapr.clients import DaprClient
    with DaprClient() as client:
        meta = client.get_metadata()
        assert meta.application_id == "sdkapp"
        client.set_metadata("team", "core")
        assert client.get_metadata().extended_metadata["team"] == "core"


async def test_async_client_get_metadata(sdk_env):
    from dapr.aio.clients import DaprClient
    async with DaprClient() as client:
        meta = await client.get_metadata()
        assert meta.application_id == "sdkapp"


def test_sdk_shutdown(sdk_env):
    from dapr.clients import DaprClient
    with DaprClient() as client:
        client.shutdown()
    assert sdk_env.proc.wait(10) == 0
