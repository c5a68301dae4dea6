"""State save and get through the sidecar against the same operations done directly on Redis.

One run, interleaved over rounds; per round and per target (redis-py asyncio
directly, the sidecar over HTTP, the sidecar over gRPC) and per operation
(save, get of a 1 KB value):

* a paced phase: ``--rate`` requests per second for ``--seconds`` (latency
  measured from each request's scheduled start, so a slow target is not
  flattered by coordinated omission);
* a saturation phase: ``--concurrency`` requests in flight for ``--seconds``
  (throughput, and latency under load).

The sidecar (``state.redis``) is pinned to CPU 0 and this load generator to
CPU 1, so "sidecar throughput" is what one sidecar core sustains. HTTP load
uses keep-alive connections of the kernel's ``HTTPClientPool``; gRPC load uses
``grpc.aio`` with the SDK's ``dapr.proto`` stubs. Results go to the
``## State`` section of ``benchmarks/RESULTS.md`` (``--write``).

    python benchmarks/bench_state.py [--rounds 3] [--seconds 4] [--rate 1000] [--write]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson

from pydapr.server.httpclient import HTTPClientPool
from pydapr.testing import Sidecar

VALUE = "v" * 1022  # a JSON string of 1,024 bytes once encoded
RESOURCES = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bench}
spec:
  type: state.redis
  version: v1
  metadata: [{name: redisHost, value: "127.0.0.1:6379"}]
"""
Op = Callable[[], Awaitable[Any]]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def paced(op: Op, rate: int, seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    lat: list[float] = []
    n = int(rate * seconds)
    t0 = clock() + 0.05
    pending = set()

    async def one(at: float) -> None:
        await op()
        lat.append(clock() - at)
    for i in range(n):
        at = t0 + i / rate
        # the loop's timers fire up to 1 ms late (whole-millisecond epoll timeouts): sleep
        # short of the start, then yield until it, so lateness does not count as latency
        delay = at - clock() - 0.002
        if delay > 0:
            await asyncio.sleep(delay)
        while clock() < at:
            await asyncio.sleep(0)
        task = loop.create_task(one(at))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return lat


async def saturate(op: Op, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    clock = time.perf_counter
    lat: list[float] = []
    end = clock() + seconds

    async def worker() -> None:
        while clock() < end:
            t = clock()
            await op()
            lat.append(clock() - t)
    start = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(lat) / (clock() - start), lat


def targets(sc: Sidecar, redis: Any, stub: Any, pb: Any, common: Any) -> dict[str, dict[str, Op]]:
    http = HTTPClientPool("127.0.0.1", sc.http_port, max_idle=256)
    body = orjson.dumps([{"key": "bench", "value": VALUE}])
    raw = orjson.dumps(VALUE)

    async def http_get() -> None:
        r = await http.request("GET", "/v1.0/state/bench/bench")
        assert r.status == 200 and len(r.body) == 1024, r.status

    async def http_save() -> None:
        r = await http.request("POST", "/v1.0/state/bench", [("content-type", "application/json")],
                               body)
        assert r.status == 204, r.body

    get_req = pb.GetStateRequest(store_name="bench", key="bench")
    save_req = pb.SaveStateRequest(store_name="bench", states=[common.StateItem(key="bench", value=raw)])

    async def grpc_get() -> None:
        r = await stub.GetState(get_req)
        assert len(r.data) == 1024

    async def redis_get() -> None:
        assert len(await redis.get("bench-direct")) == 1024

    return {
        "direct": {"get": redis_get, "save": lambda: redis.set("bench-direct", raw)},
        "http": {"get": http_get, "save": http_save},
        "grpc": {"get": grpc_get, "save": lambda: stub.SaveState(save_req)},
    }


async def run(args: argparse.Namespace, sc: Sidecar) -> dict[tuple[str, str, str], list]:
    import grpc
    import redis.asyncio as aioredis
    from dapr.proto.common.v1 import common_pb2 as common
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2 as pb
    redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool(
        host="127.0.0.1", port=6379, max_connections=64, timeout=30))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{sc.grpc_port}")
    ops = targets(sc, redis, dapr_pb2_grpc.DaprStub(channel), pb, common)
    for op in ops.values():  # warm up, and the values exist for the gets
        await op["save"]()
        for _ in range(300):
            await op["get"]()
    results: dict[tuple[str, str, str], list] = {}
    for rnd in range(args.rounds):
        for name, op in ops.items():
            for kind in ("get", "save"):
                lat = await paced(op[kind], args.rate, args.seconds)
                rps, sat = await saturate(op[kind], args.concurrency, args.seconds)
                results.setdefault((name, kind, "paced"), []).append((pct(lat, .5), pct(lat, .99),
                                                                       len(lat) / args.seconds))
                results.setdefault((name, kind, "sat"), []).append((pct(sat, .5), pct(sat, .99), rps))
                print(f"round {rnd + 1} {name:6} {kind:4}: paced p50 {pct(lat, .5):.3f} ms "
                      f"p99 {pct(lat, .99):.3f} ms | saturated {rps:8.0f}/s p50 {pct(sat, .5):.3f} ms",
                      flush=True)
    await channel.close()
    await redis.aclose()
    return results


def table(results: dict[tuple[str, str, str], list]) -> str:
    med = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in results.items()}
    rows = ["| target | op | paced p50 ms | paced p99 ms | added p50 ms | added p99 ms | "
            "saturated req/s | sat. p50 ms | throughput vs direct |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("direct", "http", "grpc"):
        for kind in ("get", "save"):
            p50, p99, _ = med[(name, kind, "paced")]
            d50, d99, _ = med[("direct", kind, "paced")]
            s50, _, rps = med[(name, kind, "sat")]
            drps = med[("direct", kind, "sat")][2]
            added = ("-", "-") if name == "direct" else (f"{p50 - d50:+.3f}", f"{p99 - d99:+.3f}")
            rows.append(f"| {name} | {kind} | {p50:.3f} | {p99:.3f} | {added[0]} | {added[1]} | "
                        f"{rps:,.0f} | {s50:.3f} | {rps / drps:.2f} |")
    return "\n".join(rows)


SAVE_LUA = """wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '[{"key": "bench", "value": "%s"}]'
""" % VALUE


def one_core(args: argparse.Namespace, sc: Sidecar) -> str:
    """What one sidecar core sustains: wrk (C, 16 connections, on CPU 1) drives the sidecar
    pinned to CPU 0, so the Python load generator above is not the limit."""
    from bench_http import wrk
    script = sc.dir / "save.lua"
    script.write_text(SAVE_LUA)
    runs: dict[str, list[tuple[float, float, float, float]]] = {"get": [], "save": []}
    for rnd in range(args.rounds):
        for kind in runs:
            url = sc.http_url + "/v1.0/state/bench" + ("/bench" if kind == "get" else "")
            res = wrk(url, args.seconds, sc.proc.pid, str(script) if kind == "save" else None)
            runs[kind].append(res)
            print(f"round {rnd + 1} wrk    {kind:4}: {res[0]:8.0f}/s p50 {res[1]:.3f} ms "
                  f"p99 {res[2]:.3f} ms, {res[3]:.1f} µs sidecar CPU per request", flush=True)
    rows = ["| op (wrk, 16 connections) | req/s | p50 ms | p99 ms | sidecar CPU µs per request | "
            "requests per sidecar CPU-second |", "|---|---:|---:|---:|---:|---:|"]
    for kind, res in runs.items():
        rps, p50, p99, cpu = (statistics.median(r[i] for r in res) for i in range(4))
        rows.append(f"| {kind} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.1f} | {1e6 / cpu:,.0f} |")
    return "\n".join(rows)


def write_section(text: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    doc = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "## State\n\n" + text.strip() + "\n"
    if re.search(r"^## State\n", doc, re.M):
        doc = re.sub(r"^## State\n.*?(?=^## |\Z)", section + "\n", doc, flags=re.M | re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    path.write_text(doc.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    import uvloop
    with Sidecar(app_id="bench", resources=RESOURCES, args=["--log-level", "warn"]) as sc:
        pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
        if pinned:
            os.sched_setaffinity(sc.proc.pid, {0})
            os.sched_setaffinity(0, {1})
        results = uvloop.run(run(args, sc))
        cores = one_core(args, sc) if pinned and shutil.which("wrk") else None
    out = table(results)
    if cores:
        out += "\n\n" + cores
    print(out)
    if args.write:
        machine = (f"CPython {platform.python_version()}, {_cpu()}, nproc = {os.cpu_count()}, "
                   f"{platform.system()} {platform.machine()}")
        write_section(f"`benchmarks/bench_state.py --rounds {args.rounds} --seconds {args.seconds:g} "
                      f"--rate {args.rate} --concurrency {args.concurrency}`: 1 KB value, "
                      f"sidecar (`state.redis`) {'pinned to CPU 0, load generator to CPU 1' if pinned else 'unpinned'}"
                      f", Redis {_redis_version()} on the same machine. Medians over the rounds.\n\n"
                      f"Machine: {machine}.\n\n{out}\n\n<!-- notes -->\n")


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _redis_version() -> str:
    import redis
    try:
        return str(redis.Redis(host="127.0.0.1", port=6379).info("server")["redis_version"])
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
