"""Input bindings delivered to a gRPC app built with the official SDK (dapr.ext.grpc)."""
from __future__ import annotations

import threading

from pydapr.testing import Sidecar, free_port

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: tick}
spec:
  type: bindings.cron
  version: v1
  metadata:
  - {name: schedule, value: "@every 1s"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: ignored}
spec:
  type: bindings.cron
  version: v1
  metadata:
  - {name: schedule, value: "@every 1s"}
"""


def test_grpc_app_receives_only_the_bindings_it_lists():
    from dapr.ext.grpc import App
    app = App()
    got: list[tuple[str, dict]] = []
    two = threading.Event()

    @app.binding("tick")
    def on_tick(request):
        got.append(("tick", dict(request.binding_metadata)))
        if len(got) >= 2:
            two.set()

    port = free_port()
    thread = threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True)
    thread.start()
    try:
        with Sidecar(app_id="grpcbind", resources=RESOURCES, app_port=port,
                     args=["--app-protocol", "grpc"]) as sc:
            assert two.wait(10), f"no cron event reached the gRPC app:\n{sc.logs()[-3000:]}"
            logs = sc.logs()
    finally:
        app.stop()
    assert "input binding ignored: the app does not handle it" in logs
    assert "input binding tick: delivering to the app" in logs
    assert got[0][1]["readTimeUTC"].endswith("+0000 UTC")
