"""A sample app for `make demo`: stores orders in state, publishes them, receives them back.

It talks to its sidecar only through the official Dapr Python SDK and plain
HTTP, exactly as it would talk to daprd. Run it with:

    pydapr run --app-id orders --app-port 8700 -- python examples/order_app.py
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients import DaprClient

APP_PORT = int(os.environ.get("APP_PORT", "8700"))
received: list[dict] = []
arrived = threading.Event()


class App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/dapr/subscribe":  # programmatic subscription
            self._reply(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
        else:
            self._reply(404, {})

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if self.path == "/orders":
            received.append(event["data"])
            print(f"app: received order {event['data']['id']} (CloudEvent id {event['id']})", flush=True)
            if len(received) >= 3:
                arrived.set()
        self._reply(200, {"status": "SUCCESS"})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def wait_until_sidecar_ready(timeout: float = 30.0) -> None:
    """/v1.0/healthz is 204 once the sidecar has read our subscriptions."""
    import urllib.request
    url = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}/v1.0/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", APP_PORT), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wait_until_sidecar_ready()
    with DaprClient() as client:
        meta = client.get_metadata()
        print(f"app: my sidecar is {meta.application_id}, components: "
              f"{[c.name + ' (' + c.type + ')' for c in meta.registered_components]}", flush=True)
        for i in range(1, 4):
            order = {"id": i, "item": ["tea", "coffee", "cake"][i - 1], "at": time.time()}
            client.save_state("statestore", f"order-{i}", json.dumps(order))
            client.publish_event("pubsub", "orders", json.dumps(order),
                                 data_content_type="application/json")
            print(f"app: saved and published order {i}", flush=True)
        stored = client.get_state("statestore", "order-2")
        print(f"app: state order-2 = {stored.data.decode()} (etag {stored.etag})", flush=True)
    if not arrived.wait(15):
        print(f"app: only {len(received)} of 3 orders came back", file=sys.stderr)
        return 1
    print("app: all 3 orders came back through pub/sub. Done.", flush=True)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
