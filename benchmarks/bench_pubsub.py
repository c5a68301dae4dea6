"""Pub/sub benchmark: publish latency, publish-to-delivery latency and delivery throughput.

For each broker (in-memory, Redis Streams, RabbitMQ) it measures, in one run:

* publish latency through the sidecar (HTTP, keep-alive) against calling the component
  directly in-process (the same broker client the sidecar uses), paced at 1,000 per
  second as in the state benchmark, interleaved over ``--rounds`` rounds with no
  subscriber running, beside the HTTP floor (``GET /v1.0/healthz``, same client) and the
  machine's own HTTP round trip: nginx answering 204 on the same core, same client (when
  nginx is installed: ``apt-get install -y nginx``); and
  publish latency again (one sequential client) while the subscriber side delivers;
* publish-to-delivery latency (median, p99) and deliveries per second to a no-op HTTP
  app, through one sidecar for in-memory (it cannot cross processes) and through a
  publisher sidecar and a subscriber sidecar for the others, against the same broker
  driven directly by its client library;
* deliveries per CPU-second of the subscribing sidecar (its user+system time).

Usage: ``python benchmarks/bench_pubsub.py [--messages 20000] [--rounds 3] [--brokers in-memory,redis,rabbitmq]``
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson

from pydapr.kinds.pubsub import SubscribeRequest
from pydapr.testing import Sidecar, free_port, server_reachable
from pydapr.testing.conformance.pubsub import make_pubsub

BROKERS = {
    "in-memory": ("pubsub.in-memory", None, {}),
    "redis": ("pubsub.redis", "redis", {"redisHost": "127.0.0.1:6379"}),
    "rabbitmq": ("pubsub.rabbitmq", "rabbitmq", {"connectionString": "amqp://guest:guest@127.0.0.1:5672/"}),
}


# --------------------------------------------------------------------------- the no-op app

NOOP_APP = r'''
import asyncio, sys, time, httptools, uvloop, orjson
port, topic = int(sys.argv[1]), sys.argv[2]
lat = []
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t; self.p = httptools.HttpRequestParser(self); self.url = b""; self.body = []
    def data_received(self, d): self.p.feed_data(d)
    def on_url(self, u): self.url = u; self.body = []
    def on_body(self, b): self.body.append(b)
    def on_message_complete(self):
        if self.url == b"/dapr/subscribe":
            out = orjson.dumps([{"pubsubname": "bench", "topic": topic, "route": "/in"}])
            self.t.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(out) + out)
        elif self.url == b"/stats":
            out = orjson.dumps(lat)
            self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(out) + out)
        else:
            ce = orjson.loads(b"".join(self.body))
            lat.append((time.time(), ce["data"]["t"]))
            self.t.write(OK)
async def main():
    await asyncio.get_running_loop().create_server(P, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()
uvloop.run(main())
'''


class KeepAlive:
    """A blocking HTTP/1.1 keep-alive client: the cheapest way to call the sidecar from Python."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes, ct: str = "application/json") -> int:
        self.sock.sendall(b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
                          % (path.encode(), ct.encode(), len(body)) + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resources(type_name: str, md: dict[str, str], consumer: str) -> str:
    items = {**md}
    if type_name != "pubsub.in-memory":
        items["consumerID"] = consumer
    lines = "".join(f"\n  - {{name: {k}, value: \"{v}\"}}" for k, v in items.items())
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: bench}}\n"
            f"spec:\n  type: {type_name}\n  version: v1\n  metadata:{lines or ' []'}\n")


# --------------------------------------------------------------------------- measurements

async def direct_publish_latency(type_name: str, md: dict[str, str], n: int) -> list[float]:
    comp = await make_pubsub(type_name, md)
    topic = f"bench-direct-{uuid.uuid4().hex[:6]}"
    body = orjson.dumps({"t": 0})
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            await comp.publish(topic, body, {}, "application/json")
            out.append(time.perf_counter() - t)
    finally:
        await comp.close()
    return out


class _UnixConn(asyncio.Protocol):
    def __init__(self) -> None:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())


class UnixHTTP:
    """Keep-alive HTTP/1.1 over a Unix socket, for a sidecar started with --unix-domain-socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.idle: list[_UnixConn] = []
        self.all: list[_UnixConn] = []

    async def request(self, method: str, target: str, body: bytes = b"",
                      content_type: str = "application/json") -> int:
        loop = asyncio.get_running_loop()
        if self.idle:
            conn = self.idle.pop()
        else:
            _, conn = await loop.create_unix_connection(_UnixConn, self.path)
            self.all.append(conn)
        head = (f"{method} {target} HTTP/1.1\r\nhost: localhost\r\ncontent-type: {content_type}"
                f"\r\ncontent-length: {len(body)}\r\n\r\n").encode()
        conn.waiter = loop.create_future()
        conn.transport.write(head + body)
        status = await conn.waiter
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self.all:
            conn.transport.close()


def start_nginx_204(folder: str) -> tuple[subprocess.Popen | None, int]:
    """One nginx process answering 204 to everything, pinned to CPU 0; (None, 0) without nginx."""
    if shutil.which("nginx") is None:
        print("nginx is not installed: no machine HTTP floor in this run", flush=True)
        return None, 0
    port = free_port()
    temps = "".join(f"{k}_temp_path {folder}/{k};\n" for k in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"worker_processes 1; daemon off; master_process off; user root;\n"
                f"pid {folder}/nginx.pid; error_log {folder}/nginx.err warn;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{ access_log off; keepalive_requests 10000000; {temps}"
                f"server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }} }}\n")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", folder])
    for _ in range(100):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        time.sleep(0.05)
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(proc.pid, {0})
    return proc, port


def publish_rounds(type_name: str, md: dict[str, str], rounds: int, rate: int = 1000,
                   seconds: float = 3.0) -> dict[str, float]:
    """Paced publishes (as the state benchmark paces its gets), interleaved over rounds: the
    component called directly in this process, the sidecar over HTTP on TCP, the same over a
    Unix socket (a second sidecar started with --unix-domain-socket), and the HTTP floor of
    each (``GET /v1.0/healthz``) with the same client, and nginx's 204 (the machine's HTTP
    round trip with this client). The sidecars and nginx are pinned to CPU 0 and this
    process to CPU 1. Medians over rounds of each round's p50 and p99."""
    import tempfile

    import uvloop
    from bench_state import paced, pct as pct_ms

    from pydapr.server.httpclient import HTTPClientPool
    per: dict[str, list[float]] = {}
    folder = tempfile.mkdtemp(prefix="pdb-", dir="/tmp")
    nginx, nginx_port = start_nginx_204(folder)
    uds = Sidecar(app_id="bench-uds", resources=resources(type_name, md, "bench-uds"),
                  args=["--log-level", "warn", "--unix-domain-socket", folder], wait_ready=False)
    with Sidecar(app_id="bench-pub", resources=resources(type_name, md, "bench-idle"),
                 args=["--log-level", "warn"]) as sc:
        uds.start()
        mask = os.sched_getaffinity(0)
        if len(mask) >= 2:
            os.sched_setaffinity(sc.proc.pid, {0})
            os.sched_setaffinity(uds.proc.pid, {0})
            os.sched_setaffinity(0, {1})

        async def run() -> None:
            comp = await make_pubsub(type_name, md)
            http = HTTPClientPool("127.0.0.1", sc.http_port, max_idle=64)
            unix = UnixHTTP(os.path.join(folder, "dapr-bench-uds-http.socket"))
            for _ in range(400):  # the socket sidecar has no TCP port to wait on
                try:
                    if await unix.request("GET", "/v1.0/healthz/outbound") == 204:
                        break
                except OSError:
                    pass
                await asyncio.sleep(0.05)
            topic = f"bench-idle-{uuid.uuid4().hex[:6]}"
            path = f"/v1.0/publish/bench/{topic}"
            ct = [("content-type", "application/json")]

            async def direct() -> None:
                await comp.publish(topic, orjson.dumps({"t": time.time()}), {}, "application/json")

            async def sidecar() -> None:
                r = await http.request("POST", path, ct, orjson.dumps({"t": time.time()}))
                assert r.status == 204, r.body

            async def floor() -> None:
                assert (await http.request("GET", "/v1.0/healthz")).status == 204

            async def unix_sidecar() -> None:
                assert await unix.request("POST", path, orjson.dumps({"t": time.time()})) == 204

            async def unix_floor() -> None:
                assert await unix.request("GET", "/v1.0/healthz") == 204
            ops = {"direct": direct, "sidecar": sidecar, "floor": floor, "uds": unix_sidecar,
                   "uds_floor": unix_floor}
            if nginx is not None:
                ng = HTTPClientPool("127.0.0.1", nginx_port)

                async def nginx_floor() -> None:
                    assert (await ng.request("GET", "/")).status == 204
                ops["nginx_floor"] = nginx_floor
            for op in ops.values():  # warm-up
                for _ in range(300):
                    await op()
            for _ in range(rounds):
                for name, op in ops.items():
                    lat = await paced(op, rate, seconds)
                    per.setdefault(name, []).append(pct_ms(lat, .5))
                    per.setdefault(name + "_p99", []).append(pct_ms(lat, .99))
            unix.close()
            await comp.close()
        try:
            uvloop.run(run())
        finally:
            os.sched_setaffinity(0, mask)
            uds.stop()
            if nginx is not None:
                nginx.terminate()
                nginx.wait()
            shutil.rmtree(folder, ignore_errors=True)
    return {k: statistics.median(v) / 1000 for k, v in per.items()}


def sidecar_publish_latency(sc: Sidecar, topic: str, n: int) -> list[float]:
    c = KeepAlive(sc.http_port)
    out = []
    path = f"/v1.0/publish/bench/{topic}"
    for _ in range(n):
        body = orjson.dumps({"t": time.time()})
        t = time.perf_counter()
        status = c.post(path, body)
        out.append(time.perf_counter() - t)
        assert status == 204, status
    c.close()
    return out


def end_to_end(type_name: str, md: dict[str, str], n: int) -> dict[str, Any]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    app = subprocess.Popen([sys.executable, "-c", NOOP_APP, str(port), topic])
    consumer = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        time.sleep(0.5)
        sub = Sidecar(app_id="bench-sub", resources=resources(type_name, md, consumer), app_port=port,
                      args=["--log-level", "warn"])
        sub.start()
        sub.wait("/v1.0/healthz")
        pub = sub
        if type_name != "pubsub.in-memory":
            pub = Sidecar(app_id="bench-pub", resources=resources(type_name, md, consumer + "-pub"),
                          args=["--log-level", "warn"]).start()
        try:
            lat = sidecar_publish_latency(pub, topic, 2000)  # also warms up
            cpu0 = cpu_seconds(sub.proc.pid)
            start = time.time()
            c = KeepAlive(pub.http_port)
            batch = 500
            for i in range(0, n, batch):
                now = time.time()
                entries = [{"entryId": str(j), "event": {"t": now}, "contentType": "application/json"}
                           for j in range(batch)]
                assert c.post(f"/v1.0-alpha1/publish/bulk/bench/{topic}", orjson.dumps(entries)) == 204
            c.close()
            stats_client = KeepAlive(port)
            deadline = time.time() + 120
            while True:
                got = _stats(stats_client)
                if len(got) >= n + 2000 or time.time() > deadline:
                    break
                time.sleep(0.2)
            cpu1 = cpu_seconds(sub.proc.pid)
            stats_client.close()
            delivered = got[2000:]
            last = max(t for t, _ in delivered) if delivered else start
            e2e = [t - s for t, s in got[:2000]]
            return {"publish_latency": lat, "delivery_latency": e2e, "delivered": len(delivered),
                    "expected": n, "rate": len(delivered) / (last - start),
                    "per_cpu": len(delivered) / max(cpu1 - cpu0, 1e-9)}
        finally:
            if pub is not sub:
                pub.stop()
            sub.stop()
    finally:
        app.terminate()
        app.wait()


def _stats(c: KeepAlive) -> list:
    c.sock.sendall(b"GET /stats HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.sock.recv(1 << 20)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += c.sock.recv(1 << 20)
    return orjson.loads(rest)


async def direct_end_to_end(type_name: str, md: dict[str, str], n: int) -> dict[str, Any]:
    """The broker driven by its client library in one process: publish n, deliver to a no-op."""
    comp = await make_pubsub(type_name, {**md, "consumerID": f"direct-{uuid.uuid4().hex[:6]}"})
    topic = f"bench-direct-{uuid.uuid4().hex[:8]}"
    done = asyncio.Event()
    lat: list[float] = []

    async def noop(msg: Any) -> None:
        lat.append(time.time() - orjson.loads(msg.data)["t"])
        if len(lat) >= n:
            done.set()
    handle = await comp.subscribe(SubscribeRequest(topic), noop)
    from pydapr.kinds.pubsub import BulkEntry
    start = time.time()
    for i in range(0, n, 500):
        now = orjson.dumps({"t": time.time()})
        await comp.bulk_publish(topic, [BulkEntry(str(j), now) for j in range(500)], {})
    await asyncio.wait_for(done.wait(), 120)
    rate = n / (time.time() - start)
    await handle.close()
    await comp.close()
    return {"rate": rate, "delivery_latency": lat}


def ms(v: float) -> str:
    return f"{v * 1000:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--brokers", default=",".join(BROKERS))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for name in args.brokers.split(","):
        type_name, server, md = BROKERS[name]
        if server and not server_reachable(server):
            print(f"skip {name}: server not reachable")
            continue
        pub = publish_rounds(type_name, md, args.rounds)
        e2e = end_to_end(type_name, md, args.messages)
        direct = asyncio.run(direct_end_to_end(type_name, md, args.messages))
        row = {
            "broker": name,
            "pub_direct_p50": ms(pub["direct"]),
            "pub_sidecar_p50": ms(pub["sidecar"]),
            "pub_added_p50": ms(pub["sidecar"] - pub["direct"]),
            "pub_sidecar_p99": ms(pub["sidecar_p99"]),
            "pub_direct_p99": ms(pub["direct_p99"]),
            "floor_p50": ms(pub["floor"]),
            "nginx_floor_p50": ms(pub["nginx_floor"]) if "nginx_floor" in pub else "-",
            "uds_p50": ms(pub["uds"]), "uds_added_p50": ms(pub["uds"] - pub["direct"]),
            "uds_floor_p50": ms(pub["uds_floor"]),
            "pub_loaded_p50": ms(statistics.median(e2e["publish_latency"])),
            "deliv_p50": ms(statistics.median(e2e["delivery_latency"])),
            "deliv_p99": ms(pct(e2e["delivery_latency"], 0.99)),
            "direct_deliv_p50": ms(statistics.median(direct["delivery_latency"])),
            "rate": f"{e2e['rate']:.0f}", "per_cpu": f"{e2e['per_cpu']:.0f}",
            "direct_rate": f"{direct['rate']:.0f}",
            "lost": e2e["expected"] - e2e["delivered"],
        }
        rows.append(row)
        print(orjson.dumps(row).decode(), flush=True)
    print()
    print("| broker | publish p50 direct (ms) | publish p50 via sidecar (ms) | added p50 (ms) | publish p99 "
          "via sidecar (ms) | HTTP floor p50: sidecar healthz / nginx 204 (ms) | "
          "via Unix socket: publish p50 / added / floor (ms) | "
          "publish p50 while delivering (ms) | pub->deliver p50 / "
          "p99 (ms) | direct pub->deliver p50, loaded (ms) | deliveries/s via sidecars | deliveries per "
          "sidecar CPU-s | direct client deliveries/s | lost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['broker']} | {r['pub_direct_p50']} | {r['pub_sidecar_p50']} | {r['pub_added_p50']} | "
              f"{r['pub_sidecar_p99']} | {r['floor_p50']} / {r['nginx_floor_p50']} | "
              f"{r['uds_p50']} / {r['uds_added_p50']} / "
              f"{r['uds_floor_p50']} | {r['pub_loaded_p50']} | {r['deliv_p50']} / "
              f"{r['deliv_p99']} | {r['direct_deliv_p50']} | {r['rate']} | {r['per_cpu']} | "
              f"{r['direct_rate']} | {r['lost']} |")


if __name__ == "__main__":
    main()
