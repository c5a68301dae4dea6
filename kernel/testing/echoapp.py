"""A tiny HTTP app for tests: echoes every request as JSON and counts hits per path.

It runs in a thread of the test process, so a test can assert what the app
received (``requests``) and that a handler was never reached (``hits``)::

    with EchoApp() as app:
        ...  # start a sidecar with app_port=app.port
        assert app.hits["/unauthorized"] == 0

``/status/<code>`` answers with that status; ``/slow/<ms>`` waits first.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["EchoApp"]


class EchoApp:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.hits: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                raw_path, _, query = self.path.partition("?")
                path = unquote(raw_path)
                seen = {"method": self.command, "raw_path": raw_path, "path": path, "query": query,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "header_lists": {k.lower(): self.headers.get_all(k) for k in self.headers},
                        "body": body.decode("latin-1")}
                with app._lock:
                    app.hits[path] += 1
                    app.requests.append(seen)
                status = 200
                parts = path.strip("/").split("/")
                if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
                    status = int(parts[1])
                elif parts[0] == "slow" and len(parts) > 1 and parts[1].isdigit():
                    time.sleep(int(parts[1]) / 1000)
                out = b"" if self.command == "HEAD" else json.dumps(seen).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-echo-app", "1")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _serve

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def last(self) -> dict[str, Any]:
        with self._lock:
            return self.requests[-1]

    def start(self) -> EchoApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> EchoApp:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
