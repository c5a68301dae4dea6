"""``pydapr run``: start a sidecar, wait until it is ready, run the app next to it.

The app gets ``DAPR_HTTP_PORT``, ``DAPR_GRPC_PORT``, ``APP_ID`` (and
``APP_PORT``) in its environment, as with ``dapr run``. When the app exits the
sidecar is stopped and the app's exit code is returned; Ctrl-C stops both.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .testing.sidecar import free_port

__all__ = ["run"]


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1.0/healthz/outbound", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def run(args: argparse.Namespace, command: list[str]) -> int:
    http_port = args.dapr_http_port or free_port()
    grpc_port = args.dapr_grpc_port or free_port()
    cmd = [sys.executable, "-m", "pydapr.daprd.app", "--app-id", args.app_id,
           "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port),
           "--log-level", args.log_level]
    if args.app_port:
        cmd += ["--app-port", str(args.app_port)]
    for path in args.resources_path:
        cmd += ["--resources-path", path]
    if args.config:
        cmd += ["--config", args.config]
    print(f"== pydapr: starting sidecar {args.app_id} (HTTP {http_port}, gRPC {grpc_port})", flush=True)
    sidecar = subprocess.Popen(cmd)
    try:
        if not _wait_ready(sidecar, http_port):
            print("== pydapr: the sidecar did not become ready; see its log above", file=sys.stderr)
            return 1
        if not command:
            print("== pydapr: sidecar running without an app; Ctrl-C to stop", flush=True)
            return sidecar.wait()
        env = {**os.environ, "DAPR_HTTP_PORT": str(http_port), "DAPR_GRPC_PORT": str(grpc_port),
               "APP_ID": args.app_id}
        if args.app_port:
            env["APP_PORT"] = str(args.app_port)
        print(f"== pydapr: starting app: {' '.join(command)}", flush=True)
        app = subprocess.Popen(command, env=env)
        try:
            code = app.wait()
        except KeyboardInterrupt:
            app.send_signal(signal.SIGINT)
            code = app.wait()
        print(f"== pydapr: app exited with code {code}", flush=True)
        return code
    finally:
        if sidecar.poll() is None:
            sidecar.send_signal(signal.SIGTERM)
            try:
                sidecar.wait(10)
            except subprocess.TimeoutExpired:
                sidecar.kill()
