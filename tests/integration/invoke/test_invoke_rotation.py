"""Certificate rotation under load: 5-second SVIDs, a steady stream of calls for 30 s, no failure.

Every renewal retires the caller's pooled connections, so the run also opens
connections (and completes handshakes) on each new certificate while calls
are in flight. Kept to about 30 s so that it runs in CI.
"""
from __future__ import annotations

import http.client
import threading
import time

import pytest

DURATION = 30.0
CALLERS = 6


@pytest.mark.timeout(120)
def test_rotation_under_load(sentry, apps, sidecars):
    env = {"DAPR_TRUST_ANCHORS": sentry.anchors}
    app = apps()
    callee = sidecars("rotb", app_port=app.port, env=env, args=sentry.sidecar_args())
    caller = sidecars("rota", env=env, args=sentry.sidecar_args())
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()
    stop = time.monotonic() + DURATION

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", caller.http_port, timeout=10)
        while time.monotonic() < stop:
            try:
                conn.request("POST", "/v1.0/invoke/rotb/method/work", b"x" * 256)
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok, body = False, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", caller.http_port, timeout=10)
            with lock:
                if ok:
                    results["ok"] += 1
                else:
                    results["failed"].append(body[:200])
            time.sleep(0.005)
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["failed"] == []
    assert results["ok"] > 1000
    renewals = callee.logs().count("certificate serial")
    assert renewals >= 1 + int(DURATION / 5)  # first SVID plus at least one renewal per TTL
    assert caller.logs().count("proxy: new connection to") >= 4
