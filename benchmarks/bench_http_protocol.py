"""CPU per request of the HTTP connection protocol, in process (no sockets, no wrk).

Feeds ``GET /v1.0/healthz HTTP/1.1`` (one request per ``data_received``, as a
keep-alive client without pipelining sends them) to a protocol bound to a
fake transport, and reports µs per request for:

* ``floor``: a minimal httptools protocol answering a constant (what parsing
  and one callback cost; nothing can be cheaper and still parse);
* ``py``: the reference twin (:mod:`pydapr._http_py`);
* ``cy``: the compiled twin (:mod:`pydapr._speedups._http`);

each with the real runtime's dispatch (the api.security wrapper, the router,
the healthz handler) and, as ``py/const`` and ``cy/const``, with a dispatch
that returns the 204 directly (the protocol's own share). Repeats alternate
between the variants (so a busy machine slows all of them alike); the table
shows the median and the lower quartile of the repeats, and the py/cy ratio is
the median of the per-repeat ratios.

    python benchmarks/bench_http_protocol.py [--requests 5000] [--repeats 60]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import httptools

REQUEST = b"GET /v1.0/healthz HTTP/1.1\r\nHost: 127.0.0.1:3500\r\n\r\n"
EXPECTED = b"HTTP/1.1 204 No Content\r\n"


class FakeTransport:
    """Just enough of an asyncio transport; counts what is written."""

    def __init__(self) -> None:
        self.writes = 0
        self.last = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.last = data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Floor:
    """The minimal httptools protocol of ``benchmarks/bench_http.py``."""

    RESP = b"HTTP/1.1 204 No Content\r\nserver: x\r\n\r\n"

    def connection_made(self, t: Any) -> None:
        self.t = t
        self.p = httptools.HttpRequestParser(self)

    def data_received(self, d: bytes) -> None:
        self.p.feed_data(d)

    def on_message_complete(self) -> None:
        self.t.write(self.RESP)


def runtime_dispatch() -> Callable:
    from pydapr.daprd.options import parse
    from pydapr.runtime import Runtime
    rt = Runtime(parse(["--app-id", "b", "--resources-path", tempfile.mkdtemp()], env={})[0])
    rt.load()
    rt.build_blocks()
    rt.ready = True
    return rt.dispatch


def make(kind: str, dispatch: Callable) -> Callable[[], Any]:
    if kind == "floor":
        return Floor
    from pydapr._http_common import DispatchCell, HTTPLimits
    module = "pydapr._http_py" if kind == "py" else "pydapr._speedups._http"
    cls = importlib.import_module(module).HTTPServerProtocol
    cell, limits = DispatchCell(dispatch), HTTPLimits()
    return lambda: cls(cell, limits, set())


def run_once(factory: Callable[[], Any], n: int) -> float:
    """µs per request over ``n`` requests on one connection."""
    proto, transport = factory(), FakeTransport()
    proto.connection_made(transport)
    feed = proto.data_received
    t0 = time.perf_counter()
    for _ in range(n):
        feed(REQUEST)
    elapsed = time.perf_counter() - t0
    assert transport.writes == n and transport.last.startswith(EXPECTED), transport.last
    return elapsed / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    from pydapr.server.request import NO_CONTENT
    real = runtime_dispatch()
    variants: dict[str, Callable[[], Any]] = {"floor": make("floor", real)}
    for kind in ("py", "cy"):
        try:
            variants[kind] = make(kind, real)
            variants[f"{kind}/const"] = make(kind, lambda req: NO_CONTENT)
        except ImportError as exc:
            print(f"{kind}: not available ({exc})", file=sys.stderr)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, factory in variants.items():  # warm-up
        run_once(factory, args.requests // 4)
    for _ in range(args.repeats):
        for name, factory in variants.items():
            times[name].append(run_once(factory, args.requests))
    print(f"Python {sys.version.split()[0]}, {args.requests} requests x {args.repeats} repeats, "
          f"loop {type(asyncio.get_running_loop()).__module__}")
    print("| variant | median µs/request | lower quartile µs/request |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {statistics.quantiles(ts, n=4)[0]:.2f} |")
    if "py" in times and "cy" in times:
        for suffix in ("", "/const"):
            ratio = statistics.median(p / c for p, c in zip(times["py" + suffix], times["cy" + suffix]))
            print(f"py{suffix} / cy{suffix}: {ratio:.2f}x (median of paired repeats)")
        py, cy, floor = (statistics.median(times[k]) for k in ("py", "cy", "floor"))
        print(f"above the floor: py {py - floor:.2f} µs, cy {cy - floor:.2f} µs")


if __name__ == "__main__":
    import uvloop
    uvloop.run(main())
