"""Publish latency of two checkouts of pydapr, side by side, request by request.

Run-to-run noise on a shared VM (the machine's own HTTP round trip moves by 40 µs between
runs) hides a change of 10 or 20 µs in ``bench_pubsub.py``. Here both sidecars run at
once, pinned to CPU 0, and every paced request (``--rate`` per second, from CPU 1) goes
to one of four targets in a shuffled order: base publish, new publish, base healthz, new
healthz. Both sides see the same machine at the same moments, and the healthz pair shows
whether the two sidecars are otherwise alike. Each sidecar gets a quarter of the requests,
so it sits idle longer between them than in ``bench_pubsub.py``: the figures are higher,
and differences in what a request brings back into the CPU's caches show more.

    python benchmarks/ab_publish.py --base /path/to/other/checkout [--new .] \\
        [--broker in-memory|redis|rabbitmq] [--seconds 30]

Both checkouts need their extensions built (``python setup.py build_ext --inplace``).
pydapr must be installed in editable mode (``pip install -e``): each sidecar is started
with the editable install pointed at its checkout.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

import orjson
from bench_pubsub import BROKERS, resources
from bench_state import paced

from pydapr.server.httpclient import HTTPClientPool
from pydapr.testing import Sidecar

#: run pydaprd from the checkout named by the first argument instead of the installed one
LAUNCH = """
import runpy, sys
tree = sys.argv.pop(1)
for finder in sys.meta_path:
    mapping = getattr(sys.modules.get(getattr(finder, "__module__", ""), None), "MAPPING", None)
    if isinstance(mapping, dict) and "pydapr" in mapping:
        root = str(__import__("pathlib").Path(mapping["pydapr"]).parent)
        for name, path in list(mapping.items()):
            mapping[name] = tree + path[len(root):]
        break
else:
    raise SystemExit("pydapr is not installed in editable mode (pip install -e)")
sys.argv[0] = "pydaprd"
runpy.run_module("pydapr.daprd.app", run_name="__main__")
"""

TARGETS = ("base", "new", "base-healthz", "new-healthz")


def sidecar(tree: Path, name: str, resource: str) -> Sidecar:
    sc = Sidecar(app_id=name, resources=resource, args=["--log-level", "warn"])
    sc.cmd[1:3] = ["-c", LAUNCH, str(tree.resolve())]
    return sc


async def measure(ports: dict[str, int], rate: int, seconds: float) -> dict[str, list[float]]:
    clients = {name: HTTPClientPool("127.0.0.1", port) for name, port in ports.items()}
    path, ct = "/v1.0/publish/bench/orders", [("content-type", "application/json")]
    lat: dict[str, list[float]] = {t: [] for t in TARGETS}

    def shuffled():
        while True:
            block = list(TARGETS)
            random.shuffle(block)
            yield from block
    order = shuffled()
    clock = time.perf_counter

    async def one() -> None:
        target = next(order)
        client = clients[target.split("-")[0]]
        t = clock()
        if target.endswith("healthz"):
            r = await client.request("GET", "/v1.0/healthz")
        else:
            r = await client.request("POST", path, ct, orjson.dumps({"t": time.time()}))
        lat[target].append((clock() - t) * 1e6)
        assert r.status == 204, r.body
    for _ in range(400):  # warm-up
        await one()
    for values in lat.values():
        values.clear()
    await paced(one, rate, seconds)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the checkout to compare against")
    ap.add_argument("--new", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--broker", choices=list(BROKERS), default="in-memory")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    type_name, _, md = BROKERS[args.broker]
    resource = resources(type_name, md, "ab")
    sidecars = {"base": sidecar(args.base, "ab-base", resource),
                "new": sidecar(args.new, "ab-new", resource)}
    mask = os.sched_getaffinity(0)
    try:
        for sc in sidecars.values():
            sc.start()
            if len(mask) >= 2:
                os.sched_setaffinity(sc.proc.pid, {0})
        if len(mask) >= 2:
            os.sched_setaffinity(0, {1})
        import uvloop
        lat = uvloop.run(measure({n: sc.http_port for n, sc in sidecars.items()}, args.rate,
                                 args.seconds))
    finally:
        os.sched_setaffinity(0, mask)
        for sc in sidecars.values():
            sc.stop()
    print(f"{args.broker}: {args.rate} requests/s for {args.seconds:g} s, in random order "
          f"(base {args.base}, new {args.new})")
    print("| target | requests | p25 µs | p50 µs | p75 µs |")
    print("|---|---:|---:|---:|---:|")
    p50 = {}
    for target, values in lat.items():
        values.sort()
        n = len(values)
        p50[target] = values[n // 2]
        print(f"| {target} | {n} | {values[n // 4]:.1f} | {values[n // 2]:.1f} | "
              f"{values[3 * n // 4]:.1f} |")
    print(f"publish p50, new - base: {p50['new'] - p50['base']:+.1f} µs "
          f"(healthz: {p50['new-healthz'] - p50['base-healthz']:+.1f} µs)")


if __name__ == "__main__":
    sys.exit(main())
