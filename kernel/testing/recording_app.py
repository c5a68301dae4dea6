"""A tiny HTTP app for tests: records every request the sidecar sends it and answers as told.

It runs in a thread of the test process (a real socket, no mocks), so a test
can start a sidecar with ``app_port=app.port`` and then wait, by polling a
condition rather than sleeping, for the calls the sidecar makes into the app.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["RecordingApp", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingApp:
    """Records requests; ``routes`` maps ``"METHOD /path"`` to a status (or ``(status, body)``).

    Unlisted requests answer ``default_status`` (200 for POST/PUT, 404 otherwise).
    """

    def __init__(self, routes: dict[str, Any] | None = None,
                 default_status: int | None = None) -> None:
        self.routes = dict(routes or {})
        self.default_status = default_status
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = Recorded(self.command, self.path, headers, body)
                with app._cond:
                    app.requests.append(rec)
                    app._cond.notify_all()
                status, out = app._answer(rec)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the sidecar gave up waiting (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, rec: Recorded) -> tuple[int, bytes]:
        path = rec.path.split("?", 1)[0]
        found = self.routes.get(f"{rec.method} {path}")
        if found is None:
            status = self.default_status or (200 if rec.method in ("POST", "PUT") else 404)
            return status, b""
        if isinstance(found, tuple):
            return found[0], found[1]
        return int(found), b""

    def wait_for(self, predicate: Callable[[Recorded], bool], count: int = 1,
                 timeout: float = 10.0) -> list[Recorded]:
        """The first ``count`` recorded requests matching ``predicate``; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [r for r in self.requests if predicate(r)]
                if len(hits) >= count:
                    return hits[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.method, r.path) for r in self.requests]
                    raise TimeoutError(f"{len(hits)}/{count} matching requests after {timeout}s; "
                                       f"seen: {seen[-20:]}")
                self._cond.wait(left)

    def __enter__(self) -> RecordingApp:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
