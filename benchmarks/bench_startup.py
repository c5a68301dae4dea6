"""Time from spawning pydaprd to its HTTP API accepting requests, and to full readiness.

    python benchmarks/bench_startup.py [--runs 15] [--resources DIR]

"Accepting" is the first successful TCP connect to the HTTP port; "answering"
the first HTTP answer of any status (500 "not ready" while plugins load);
"ready" the first 204 from /v1.0/healthz/outbound (components and gRPC up).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(resources: str | None) -> tuple[float, float, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "pydapr.daprd.app", "--app-id", "bench", "--dapr-http-port", str(port),
           "--dapr-grpc-port", str(free_port()), "--log-level", "warn"]
    if resources is not None:
        cmd += ["--resources-path", resources]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={"PYDAPR_HOME": tempfile.mkdtemp(), "PATH": "/usr/bin:/bin"})
    accepting = answering = ready = 0.0
    try:
        while not accepting:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                accepting = time.perf_counter() - t0
            except OSError:
                time.sleep(0.001)
        while not ready:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1.0/healthz/outbound", timeout=1)
                ready = time.perf_counter() - t0
            except urllib.error.HTTPError:  # an answer, just not ready yet
                answering = answering or time.perf_counter() - t0
                time.sleep(0.002)
            except Exception:
                time.sleep(0.002)
        answering = answering or ready
    finally:
        proc.terminate()
        proc.wait()
    return accepting, answering, ready


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--resources", default=None, help="resources folder (default: the embedded default)")
    args = ap.parse_args()
    one(args.resources)  # warm the file cache and .pyc files
    acc, ans, rdy = zip(*(one(args.resources) for _ in range(args.runs)))

    def p(xs, q):
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000
    print(f"HTTP accepting: median {statistics.median(acc) * 1000:.0f} ms, p90 {p(acc, 0.9):.0f} ms")
    print(f"first answer:   median {statistics.median(ans) * 1000:.0f} ms, p90 {p(ans, 0.9):.0f} ms")
    print(f"outbound ready: median {statistics.median(rdy) * 1000:.0f} ms, p90 {p(rdy, 0.9):.0f} ms")


if __name__ == "__main__":
    main()
