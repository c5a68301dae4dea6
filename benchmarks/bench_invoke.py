"""Service invocation: a pydaprd pair (mTLS) against a direct call and an nginx mTLS pair.

One run starts everything on loopback:

* ``app``: a minimal uvloop+httptools HTTP server (answers ``200 ok``);
* ``direct``: the load generator calls the app;
* ``pydapr``: load generator -> sidecar A (``/v1.0/invoke/b/method/echo``) -> proxy
  loop over mTLS (sentry-issued SVIDs) -> sidecar B -> app;
* ``nginx``: load generator -> nginx 1 (plain HTTP) -> nginx 2 over mTLS (client
  certificate required and verified, upstream keep-alive) -> app. Each nginx runs
  one process, like one sidecar.

Paced load: ``--rate`` requests/s over ``--conns`` keep-alive connections, 1 KB POST
bodies, ``--seconds`` measured after ``--warmup``; the targets are interleaved over
``--rounds`` rounds. Then a saturation run per target (closed loop, same
connections). Latency is measured by the load generator (a separate process,
pinned to the last CPU) from the write of a request to the end of its response.
CPU seconds and RSS per proxy process come from /proc. ``--write`` replaces the
"## Service invocation" section of benchmarks/RESULTS.md.

    python benchmarks/bench_invoke.py [--rate 1000] [--conns 16] [--seconds 20] [--rounds 3]

Needs nginx (``apt-get install -y nginx``) and trustme (test extra).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

APP = r'''
import asyncio, sys, uvloop, httptools
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.p = httptools.HttpRequestParser(self)
    def data_received(self, d): self.p.feed_data(d)
    def on_message_complete(self): self.t.write(RESP)
async def main():
    await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await asyncio.sleep(1e9)
uvloop.run(main())
'''

LOADGEN = r'''
import asyncio, json, sys, time, uvloop, httptools
host, port, path, rate, conns, seconds, size, mode = sys.argv[1:9]
port, rate, conns, seconds, size = int(port), float(rate), int(conns), float(seconds), int(size)
body = b"x" * size
req = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/octet-stream\r\n"
       f"content-length: {size}\r\n\r\n").encode() + body
clock = time.perf_counter
class C(asyncio.Protocol):
    def __init__(self): self.p = httptools.HttpResponseParser(self); self.w = None; self.status = 0
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.p.feed_data(d)
    def on_message_complete(self):
        self.status = self.p.get_status_code(); w, self.w = self.w, None
        if w is not None and not w.done(): w.set_result(None)
    def connection_lost(self, exc):
        if self.w is not None and not self.w.done(): self.w.set_exception(ConnectionError("lost"))
    async def call(self):
        self.w = asyncio.get_running_loop().create_future(); self.t.write(req); await self.w
        return self.status
async def main():
    loop = asyncio.get_running_loop()
    cs = [(await loop.create_connection(C, host, port))[1] for _ in range(conns)]
    lat, errors, late = [], 0, 0
    t0 = clock() + 0.05; end = t0 + seconds
    async def worker(k, c):
        nonlocal errors, late
        j = 0
        while True:
            if mode == "paced":
                at = t0 + (k + conns * j) / rate; j += 1
                if at >= end: return
                wait = at - clock()
                if wait > 0: await asyncio.sleep(wait)
                else: late += wait < -0.001
            elif clock() >= end: return
            s = clock()
            try: st = await c.call()
            except ConnectionError: errors += 1; return
            lat.append(clock() - s)
            if st != 200: errors += 1
    await asyncio.gather(*(worker(k, c) for k, c in enumerate(cs)))
    took = max(clock() - t0, 1e-9)
    for c in cs: c.t.close()
    print(json.dumps({"latencies": lat, "errors": errors, "late": late, "seconds": took}))
uvloop.run(main())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, ok=lambda status: status < 500) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"),
                                        timeout=2) as r:
                if ok(r.status):
                    return
        except urllib.error.HTTPError as e:
            if ok(e.code):
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-invoke-"))
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    def spawn(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        p = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})}, cwd=self.tmp)
        self.procs.append(p)
        return p

    # -- setup ------------------------------------------------------------------------------

    def start_app(self) -> int:
        port = free_port()
        (self.tmp / "app.py").write_text(APP)
        self.app = self.spawn("app", [sys.executable, str(self.tmp / "app.py"), str(port)])
        wait_http(f"http://127.0.0.1:{port}/")
        return port

    def start_pydapr(self, app_port: int) -> str:
        home = self.tmp / "home"
        home.mkdir()
        empty = self.tmp / "resources"
        empty.mkdir()
        env = {"PYDAPR_HOME": str(home)}
        args: list[str] = []
        if not self.args.plain:
            sentry_port = free_port()
            self.spawn("sentry", [sys.executable, "-m", "pydapr.sentry", "--issuer-credentials",
                                  str(self.tmp / "certs"), "--port", str(sentry_port)], env)
            ca = self.tmp / "certs" / "ca.crt"
            for _ in range(400):
                if ca.exists() and ca.stat().st_size:
                    break
                time.sleep(0.05)
            env["DAPR_TRUST_ANCHORS"] = ca.read_text()
            args = ["--enable-mtls", "--sentry-address", f"127.0.0.1:{sentry_port}"]
        if self.args.pure:
            env["PYDAPR_NO_EXTENSIONS"] = "1"
        ports = {}
        for name, extra in (("b", ["--app-port", str(app_port)]), ("a", [])):
            ports[name] = free_port()
            run = [sys.executable, "-m", "pydapr.daprd.app"]
            if self.args.profile:
                run = [sys.executable, str(Path(__file__).with_name("profile_sidecar.py")),
                       str(Path(self.args.profile).resolve() / f"sidecar-{name}.prof"), "--"]
            p = self.spawn(f"sidecar-{name}", [
                *run, "--app-id", name,
                "--dapr-http-port", str(ports[name]), "--dapr-grpc-port", str(free_port()),
                "--resources-path", str(empty), "--log-level", "info", *extra, *args], env)
            setattr(self, f"sidecar_{name}", p)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/v1.0/healthz", timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
        url = f"http://127.0.0.1:{ports['a']}/v1.0/invoke/b/method/echo"
        wait_http(url, ok=lambda s: s == 200)
        return url

    def start_nginx(self, app_port: int) -> str:
        import trustme
        ca = trustme.CA()
        server = ca.issue_cert("localhost")
        client = ca.issue_cert("nginx-client")
        d = self.tmp / "nginx"
        d.mkdir()
        ca.cert_pem.write_to_path(str(d / "ca.pem"))
        server.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
        client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
        p1, p2 = free_port(), free_port()
        common = ("worker_processes 1; daemon off; master_process off; user root;\n"
                  "events { worker_connections 4096; }\n")
        temps = "".join(f"{k}_temp_path {d}/{k};\n" for k in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        front = f"""{common}pid {d}/n1.pid; error_log {d}/n1.err warn;
http {{ access_log off; keepalive_requests 1000000; {temps}
  upstream inner {{ server 127.0.0.1:{p2}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{p1};
    location / {{ proxy_pass https://inner; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate {d}/client.pem; proxy_ssl_certificate_key {d}/client.pem;
      proxy_ssl_trusted_certificate {d}/ca.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
      proxy_ssl_session_reuse on; }} }} }}
"""
        back = f"""{common}pid {d}/n2.pid; error_log {d}/n2.err warn;
http {{ access_log off; keepalive_requests 1000000; {temps}
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{p2} ssl; ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.pem; ssl_client_certificate {d}/ca.pem; ssl_verify_client on;
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""
        (d / "front.conf").write_text(front)
        (d / "back.conf").write_text(back)
        self.nginx_back = self.spawn("nginx-back", ["nginx", "-c", str(d / "back.conf"), "-p", str(d)])
        self.nginx_front = self.spawn("nginx-front", ["nginx", "-c", str(d / "front.conf"), "-p", str(d)])
        url = f"http://127.0.0.1:{p1}/echo"
        wait_http(url, ok=lambda s: s == 200)
        return url

    # -- load ----------------------------------------------------------------------------------

    def load(self, url: str, seconds: float, mode: str) -> dict:
        m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), m.group(2), m.group(3)
        cmd = [sys.executable, "-c", LOADGEN, host, port, path, str(self.args.rate),
               str(self.args.conns), str(seconds), str(self.args.body), mode]
        cpu = os.cpu_count() or 1
        if shutil.which("taskset") and cpu > 1 and not self.args.no_pin:
            cmd = ["taskset", "-c", str(cpu - 1), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def measured(self, name: str, url: str, pids: list[int], seconds: float, mode: str) -> dict:
        before = {pid: proc_cpu(pid) for pid in pids}
        r = self.load(url, seconds, mode)
        cpu = {pid: proc_cpu(pid) - before[pid] for pid in pids}
        lat = r["latencies"]
        return {"target": name, "n": len(lat), "errors": r["errors"], "late": r["late"],
                "rps": len(lat) / r["seconds"], "p50": pct(lat, 0.5), "p90": pct(lat, 0.9),
                "p99": pct(lat, 0.99), "cpu": [cpu[p] for p in pids],
                "rss": [proc_rss_mb(p) for p in pids], "seconds": r["seconds"]}

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def summarise(rounds: list[dict], sat: list[dict], warm: tuple[int, int]) -> str:
    by: dict[str, list[dict]] = {}
    for r in rounds:
        by.setdefault(r["target"], []).append(r)
    med = {t: {k: statistics.median(x[k] for x in rs) for k in ("p50", "p90", "p99", "rps")}
           for t, rs in by.items()}
    d = med["direct"]
    lines = [
        "| target | rps | p50 ms | p90 ms | p99 ms | added p50 | added p90 | added p99 | "
        "CPU s per proxy per 1k req/s | RSS MB per proxy | saturation rps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    satd = {s["target"]: s["rps"] for s in sat}
    for t in ("direct", "pydapr", "nginx"):
        if t not in med:
            continue
        m = med[t]
        rs = by[t]
        cpu = ("-" if t == "direct" else " / ".join(
            f"{statistics.median(r['cpu'][i] / r['seconds'] / (r['rps'] / 1000) for r in rs):.3f}"
            for i in range(len(rs[0]["cpu"]))))
        rss = "-" if t == "direct" else " / ".join(f"{max(r['rss'][i] for r in rs):.1f}"
                                                   for i in range(len(rs[0]["rss"])))
        added = ["-"] * 3 if t == "direct" else [f"{m[k] - d[k]:.3f}" for k in ("p50", "p90", "p99")]
        lines.append(f"| {t} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p90']:.3f} | {m['p99']:.3f} | "
                     f"{' | '.join(added)} | {cpu} | {rss} | {satd.get(t, float('nan')):.0f} |")
    errs = sum(r["errors"] for r in rounds + sat)
    conns, reqs = warm
    warm_line = (f"Warm connections (sidecar A's proxy pool): {conns} connection(s) opened for "
                 f"{reqs} requests, {100 * (1 - conns / max(reqs, 1)):.3f} % of requests on an "
                 "already open connection." if reqs else "")
    return "\n".join(lines) + f"\n\nErrors: {errs}. {warm_line}\n"


def write_section(text: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "## Service invocation\n\n" + text.strip() + "\n"
    pattern = re.compile(r"## Service invocation\n.*?(?=\n## |\Z)", re.S)
    new = pattern.sub(lambda _m: section.rstrip("\n"), old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + section
    path.write_text(new if new.endswith("\n") else new + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--body", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--saturation", type=float, default=10)
    ap.add_argument("--plain", action="store_true", help="sidecars without mTLS")
    ap.add_argument("--pure", action="store_true", help="PYDAPR_NO_EXTENSIONS=1 for the sidecars")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the load generator")
    ap.add_argument("--skip-nginx", action="store_true")
    ap.add_argument("--profile", metavar="DIR", help="run the sidecars under cProfile (CPU clock); "
                    "profiles land in DIR/sidecar-{a,b}.prof (figures are then not comparable)")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    b = Bench(args)
    rounds: list[dict] = []
    sat: list[dict] = []
    try:
        app_port = b.start_app()
        targets = {"direct": (f"http://127.0.0.1:{app_port}/echo", []),
                   "pydapr": (b.start_pydapr(app_port), [b.sidecar_a.pid, b.sidecar_b.pid])}
        if not args.skip_nginx and shutil.which("nginx"):
            targets["nginx"] = (b.start_nginx(app_port), [b.nginx_front.pid, b.nginx_back.pid])
        for name, (url, _) in targets.items():
            b.load(url, args.warmup, "paced")
        for i in range(args.rounds):
            for name, (url, pids) in targets.items():
                r = b.measured(name, url, pids, args.seconds, "paced")
                rounds.append(r)
                print(f"round {i + 1} {name:7s} rps {r['rps']:7.0f} p50 {r['p50']:.3f} "
                      f"p90 {r['p90']:.3f} p99 {r['p99']:.3f} ms cpu {r['cpu']} rss {r['rss']} "
                      f"errors {r['errors']} late {r['late']}", flush=True)
        for name, (url, pids) in targets.items():
            r = b.measured(name, url, pids, args.saturation, "saturate")
            sat.append(r)
            print(f"saturation {name:7s} rps {r['rps']:7.0f} p50 {r['p50']:.3f} ms "
                  f"cpu {r['cpu']}", flush=True)
    finally:
        b.stop()
    m = re.search(r"proxy client: (\d+) connection\(s\) opened for (\d+) request",
                  b.logs["sidecar-a"].read_text() if "sidecar-a" in b.logs else "")
    warm = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    table = summarise(rounds, sat, warm)
    mode = "plain TCP" if args.plain else "mTLS (sentry SVIDs)"
    head = (f"`benchmarks/bench_invoke.py --rate {args.rate:g} --conns {args.conns} --seconds "
            f"{args.seconds:g} --rounds {args.rounds}`: {args.body} B POST bodies, paced, "
            f"{args.warmup:g} s warm-up, targets interleaved per round (medians over rounds), "
            f"then {args.saturation:g} s closed-loop saturation per target. pydapr pair over "
            f"{mode}{', pure-Python twins' if args.pure else ''}; nginx "
            f"{_nginx_version()} pair with mTLS between its two processes (one process each, "
            "upstream keep-alive). The load generator is pinned to the last CPU; the proxies are "
            f"not pinned. Machine: CPython {platform.python_version()}, `nproc` = {os.cpu_count()}, "
            f"{platform.machine()}. Latency from request write to response end, in ms. CPU and "
            "RSS are per proxy process, A / B (front / back for nginx).\n\n")
    print(head + table)
    if args.write:
        write_section(head + table)


def _nginx_version() -> str:
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        return out.strip().split("/")[-1]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
