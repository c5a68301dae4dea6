"""Load on a trivial route: GET /v1.0/healthz, 16 connections, the sidecar on one core.

Runs, in one go and interleaved over several rounds: pydaprd (sidecar pinned to
CPU 0), and a minimal uvloop+httptools server answering the same bytes (the
ceiling of this machine for a Python server), with wrk pinned to CPU 1.
Prints requests/s, median and p99 latency per round and the ratio.

    python benchmarks/bench_http.py [--rounds 3] [--seconds 10]

Needs wrk (apt-get install wrk) and taskset (util-linux).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

MINIMAL = r'''
import asyncio, sys, uvloop, httptools
RESP = b"HTTP/1.1 204 No Content\r\nserver: x\r\n\r\n"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.p = httptools.HttpRequestParser(self)
    def data_received(self, d): self.p.feed_data(d)
    def on_message_complete(self): self.t.write(RESP)
async def main():
    await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await asyncio.sleep(3600)
uvloop.run(main())
'''


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, seconds: int) -> tuple[float, float, float]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, ms("50%"), ms("99%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = tempfile.mkdtemp()
    sp, mp = free_port(), free_port()
    sidecar = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "pydapr.daprd.app",
                                "--app-id", "bench", "--dapr-http-port", str(sp),
                                "--dapr-grpc-port", str(free_port()), "--resources-path", tmp,
                                "--log-level", "warn"])
    minimal = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", MINIMAL, str(mp)])
    try:
        wait_up(f"http://127.0.0.1:{sp}/v1.0/healthz")
        wait_up(f"http://127.0.0.1:{mp}/")
        from pydapr.router import IMPLEMENTATION
        print(f"router: {IMPLEMENTATION}; cpus: {os.cpu_count()}")
        results: dict[str, list[tuple[float, float, float]]] = {"pydaprd": [], "minimal": []}
        for r in range(args.rounds):
            for name, port in (("pydaprd", sp), ("minimal", mp)):
                wrk(f"http://127.0.0.1:{port}/v1.0/healthz", 2)  # warm-up
                res = wrk(f"http://127.0.0.1:{port}/v1.0/healthz", args.seconds)
                results[name].append(res)
                print(f"round {r + 1} {name:8s} {res[0]:>10.0f} req/s  p50 {res[1]:.3f} ms  p99 {res[2]:.3f} ms")
        med = {n: tuple(statistics.median(x[i] for x in v) for i in range(3)) for n, v in results.items()}
        for n, (rps, p50, p99) in med.items():
            print(f"median {n:8s} {rps:>10.0f} req/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms")
        print(f"ratio pydaprd/minimal throughput: {med['pydaprd'][0] / med['minimal'][0]:.2f}")
    finally:
        sidecar.terminate()
        minimal.terminate()
        sidecar.wait()
        minimal.wait()


if __name__ == "__main__":
    main()
