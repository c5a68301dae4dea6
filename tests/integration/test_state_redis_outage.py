"""A Redis that goes away: clear 500s with Dapr's codes, the sidecar stays up and recovers.

The outage is a TCP proxy in front of the real Redis that this test stops and
starts again on the same port; the real Redis is never touched.
"""
from __future__ import annotations

import json
import time

from pydapr.testing import Sidecar, free_port, require_server
from pydapr.testing.tcpproxy import TCPProxy


def test_redis_outage_and_recovery() -> None:
    require_server("redis")
    proxy = TCPProxy(free_port(), ("127.0.0.1", 6379)).start()
    res = ("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: cache}\nspec:\n"
           "  type: state.redis\n  version: v1\n  metadata:\n"
           f"  - {{name: redisHost, value: '127.0.0.1:{proxy.port}'}}\n"
           "  - {name: dialTimeout, value: 1s}\n  - {name: readTimeout, value: 1s}\n")
    try:
        with Sidecar(app_id=f"outage{free_port()}", resources=res) as sc:
            sc.wait("/v1.0/healthz")  # fully up (start() waits for outbound only)
            save = json.dumps([{"key": "k", "value": "before"}]).encode()
            assert sc.request("POST", "/v1.0/state/cache", save)[0] == 204

            proxy.stop()
            started = time.monotonic()
            status, _, body = sc.request("GET", "/v1.0/state/cache/k")
            assert status == 500 and json.loads(body)["errorCode"] == "ERR_STATE_GET", body
            status, _, body = sc.request("POST", "/v1.0/state/cache",
                                         json.dumps([{"key": "k", "value": "during"}]).encode())
            assert status == 500 and json.loads(body)["errorCode"] == "ERR_STATE_SAVE", body
            assert "cache" in json.loads(body)["message"]
            assert time.monotonic() - started < 3, "errors must come quickly, not hang"
            assert sc.proc.poll() is None and sc.request("GET", "/v1.0/healthz")[0] == 204

            proxy.start()
            deadline = time.monotonic() + 15
            while True:
                status, _, body = sc.request("GET", "/v1.0/state/cache/k")
                if status == 200:
                    break
                assert time.monotonic() < deadline, f"no recovery: {status} {body!r}"
                time.sleep(0.1)
            assert body == b'"before"'  # the failed save wrote nothing
    finally:
        proxy.stop()
