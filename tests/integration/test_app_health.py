"""App health probing (--enable-app-health-check): unhealthy apps are not called, then recover."""
from __future__ import annotations

import json
import time

from pydapr.testing import Sidecar
from pydapr.testing.recording_app import RecordingApp


def _invoke(sc: Sidecar) -> tuple[int, bytes]:
    status, _, body = sc.request("POST", "/v1.0/invoke/healthy/method/work", b"{}",
                                 {"content-type": "application/json"})
    return status, body


def _until(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def test_unhealthy_app_is_not_called_and_recovers():
    routes = {"GET /healthz": 200, "POST /work": (200, b"done")}
    with RecordingApp(routes) as app, Sidecar(
            app_id="healthy", app_port=app.port, resources="",
            args=["--enable-app-health-check", "--app-health-probe-interval", "0.1",
                  "--app-health-probe-timeout", "300", "--app-health-threshold", "2"]) as sc:
        sc.wait("/v1.0/healthz")
        app.wait_for(lambda r: r.path == "/healthz")  # the sidecar probes the app
        assert _invoke(sc) == (200, b"done")
        doc = json.loads(sc.request("GET", "/v1.0/metadata")[2])
        assert doc["appConnectionProperties"]["health"]["healthThreshold"] == 2

        app.routes["GET /healthz"] = 503
        status, body = _until(lambda: (lambda r: r if r[0] != 200 else None)(_invoke(sc)))
        assert status >= 500 and b"healthy" in body
        work_calls = len([r for r in app.requests if r.path == "/work"])
        assert _invoke(sc)[0] >= 500
        assert len([r for r in app.requests if r.path == "/work"]) == work_calls  # app not called

        app.routes["GET /healthz"] = 200
        assert _until(lambda: _invoke(sc) == (200, b"done"))
