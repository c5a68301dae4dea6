"""Fixtures shared by the end-to-end tests that drive a sidecar with the official SDK."""
from __future__ import annotations

from typing import Any, Callable

import pytest


@pytest.fixture
def sdk_for(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], Any]:
    """``sdk_for(sidecar)`` points the SDK (environment and its import-time settings) at it."""
    def point(sidecar: Any) -> Any:
        from dapr.conf import settings
        for k, v in sidecar.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sidecar.http_port)
        monkeypatch.setattr(settings, "DAPR_GRPC_PORT", sidecar.grpc_port)
        return sidecar
    return point
