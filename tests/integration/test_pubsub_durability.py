"""At-least-once across failures: a sidecar killed mid-delivery, and a Redis connection cut
while messages flow (through a TCP proxy the test controls, stopped and started again)."""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import orjson

from pydapr.testing import Sidecar, free_port, require_server
from pydapr.testing.recording_app import Recorded, RecordingApp
from pydapr.testing.tcpproxy import TCPProxy


class HangFirst(RecordingApp):
    """Never answers the first delivery (its sidecar gets killed meanwhile); accepts later ones."""

    def __init__(self) -> None:
        subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
        super().__init__({"GET /dapr/subscribe": (200, orjson.dumps(subs))})
        self.release = threading.Event()

    def _answer(self, rec: Recorded) -> tuple[int, bytes]:
        if rec.path == "/orders" and len([r for r in self.requests if r.path == "/orders"]) == 1:
            self.release.wait(30)
            return 500, b""
        return super()._answer(rec)


def test_default_pubsub_redelivers_after_the_sidecar_is_killed(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    with HangFirst() as app:
        first = Sidecar(app_id="durable", app_port=app.port, home=home).start()
        try:
            first.wait("/v1.0/healthz")
            status, _, _ = first.request("POST", "/v1.0/publish/pubsub/orders", b'{"id": 7}',
                                         {"content-type": "application/json"})
            assert status == 204
            app.wait_for(lambda r: r.path == "/orders")
            first.proc.kill()  # mid-delivery: the app has not answered
            first.proc.wait()
        finally:
            first.stop()
        with Sidecar(app_id="durable", app_port=app.port, home=home) as second:
            again = app.wait_for(lambda r: r.path == "/orders", count=2, timeout=15)
            assert orjson.loads(again[1].body)["data"] == {"id": 7}
            second.wait("/v1.0/healthz")
        app.release.set()
    assert (Path(home) / "pubsub-pubsub.db").exists()


def test_redis_connection_cut_loses_no_acknowledged_message() -> None:
    require_server("redis")
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    proxy = TCPProxy(free_port(), ("127.0.0.1", 6379)).start()
    resources = f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: redis}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "127.0.0.1:{proxy.port}"}}
  - {{name: consumerID, value: "{topic}"}}
  - {{name: processingTimeout, value: 1s}}
  - {{name: redeliverInterval, value: 200ms}}
  - {{name: readTimeout, value: 2s}}
"""
    subs = [{"pubsubname": "redis", "topic": topic, "route": "/in"}]
    try:
        with RecordingApp({"GET /dapr/subscribe": (200, orjson.dumps(subs))}) as app, \
                Sidecar(app_id="outage", resources=resources, app_port=app.port) as sc:
            sc.wait("/v1.0/healthz")
            acked: list[int] = []
            refused = 0
            cut_at = restarted = 0.0
            n = 0
            # 100 publishes, a one-second cut, then 100 more acknowledged after the restart
            while len(acked) < 200 and n < 5000:
                if n == 100:
                    proxy.stop()
                    cut_at = time.monotonic()
                if cut_at and not restarted and time.monotonic() - cut_at > 1.0:
                    proxy.start()
                    restarted = time.monotonic()
                body = orjson.dumps({"n": n})
                status, _, _ = sc.request("POST", f"/v1.0/publish/redis/{topic}", body,
                                          {"content-type": "application/json"}, timeout=10)
                if status == 204:
                    acked.append(n)
                else:
                    refused += 1
                    assert status == 500
                    time.sleep(0.01)  # a failed publish returns at once
                n += 1
            assert refused > 0 and len(acked) >= 200 and restarted

            def received() -> set[int]:
                return {orjson.loads(r.body)["data"]["n"] for r in app.requests if r.path == "/in"}
            deadline = time.monotonic() + 20
            while not set(acked) <= received() and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = set(acked) - received()
            assert not missing, f"acknowledged but never delivered: {sorted(missing)[:20]}"
    finally:
        proxy.stop()
