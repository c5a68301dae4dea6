"""Load on a trivial route: GET /v1.0/healthz, 16 connections, the sidecar on one core.

Runs, in one go and interleaved over several rounds: pydaprd (sidecar pinned to
CPU 0), and a minimal uvloop+httptools server answering the same bytes (the
ceiling of this machine for a Python server), with wrk pinned to CPU 1.
Prints requests/s, median and p99 latency per round and the ratio, and the
server's CPU time per request (user + system, from /proc/<pid>/stat over the
timed run): on a shared machine the throughput moves with the neighbours'
load, the CPU per request much less.

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: float, pid: int | None = None,
        script: str | None = None) -> tuple[float, float, float, float]:
    """requests/s, p50 ms, p99 ms, and the server's CPU µs per request (0 without ``pid``);
    ``script`` is a wrk Lua script (to send a POST, say)."""
    cpu0 = cpu_seconds(pid) if pid else 0.0
    extra = ["-s", script] if script else []
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency",
                          *extra, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else 0.0

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad or "Socket errors" in out:
        print(f"warning: {url}: {bad.group(0) if bad else 'socket errors'}", file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, ms("50%"), ms("99%"), cpu / max(total, 1) * 1e6


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
        from pydapr.http_protocol import IMPLEMENTATION as HTTP_IMPL
        from pydapr.router import IMPLEMENTATION
        print(f"router: {IMPLEMENTATION}; http protocol: {HTTP_IMPL}; cpus: {os.cpu_count()}")
        results: dict[str, list[tuple[float, float, float, float]]] = {"pydaprd": [], "minimal": []}
        for r in range(args.rounds):
            for name, port, pid in (("pydaprd", sp, sidecar.pid), ("minimal", mp, minimal.pid)):
                wrk(f"http://127.0.0.1:{port}/v1.0/healthz", 2)  # warm-up
                res = wrk(f"http://127.0.0.1:{port}/v1.0/healthz", args.seconds, pid)
                results[name].append(res)
                print(f"round {r + 1} {name:8s} {res[0]:>10.0f} req/s  p50 {res[1]:.3f} ms  "
                      f"p99 {res[2]:.3f} ms  cpu {res[3]:.2f} µs/req")
        med = {n: tuple(statistics.median(x[i] for x in v) for i in range(4)) for n, v in results.items()}
        for n, (rps, p50, p99, cpu) in med.items():
            print(f"median {n:8s} {rps:>10.0f} req/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms  cpu {cpu:.2f} µs/req")
        print(f"ratio pydaprd/minimal throughput: {med['pydaprd'][0] / med['minimal'][0]:.2f}")
    finally:
        sidecar.terminate()
        minimal.terminate()
        sidecar.wait()
        minimal.wait()


if __name__ == "__main__":
    main()
