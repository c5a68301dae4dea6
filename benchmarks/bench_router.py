"""Route-matcher twins on a realistic Dapr route table (plain ``timeit``, no extra deps).

Usage::

    python benchmarks/bench_router.py [--repeat 200] [--number 200] [--per-path]

Each repeat times ``number`` passes over :data:`PATHS` (a mix of hits, a
catch-all, percent-escapes and a miss) and reports ns per ``match`` call
(including the benchmark loop's own small overhead); the median and p99 are
over the repeats, which alternate between the twins. The compiled twin is skipped, with a note,
when it is not built (``python setup.py build_ext --inplace``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import timeit

from pydapr._router_py import Router as RouterPy

try:
    from pydapr._speedups._router import Router as RouterCy
except ImportError:  # not built
    RouterCy = None

#: (methods, pattern): the daprd HTTP API surface, about 40 routes.
ROUTES: list[tuple[tuple[str, ...], str]] = [
    (("GET",), "/v1.0/healthz"),
    (("GET",), "/v1.0/healthz/outbound"),
    (("GET",), "/v1.0/metadata"),
    (("PUT",), "/v1.0/metadata/{key}"),
    (("POST",), "/v1.0/shutdown"),
    (("POST",), "/v1.0/state/{store}"),
    (("GET", "DELETE"), "/v1.0/state/{store}/{key}"),
    (("POST", "PUT"), "/v1.0/state/{store}/bulk"),
    (("POST", "PUT"), "/v1.0/state/{store}/transaction"),
    (("POST", "PUT"), "/v1.0-alpha1/state/{store}/query"),
    (("POST",), "/v1.0/publish/{pubsub}/{topic*}"),
    (("POST",), "/v1.0-alpha1/publish/bulk/{pubsub}/{topic*}"),
    (("*",), "/v1.0/invoke/{app}/method/{method*}"),
    (("GET",), "/v1.0/secrets/{store}/bulk"),
    (("GET",), "/v1.0/secrets/{store}/{key}"),
    (("POST", "PUT"), "/v1.0/bindings/{name}"),
    (("*",), "/v1.0/actors/{type}/{id}/method/{method}"),
    (("POST", "PUT"), "/v1.0/actors/{type}/{id}/state"),
    (("GET",), "/v1.0/actors/{type}/{id}/state/{key}"),
    (("POST", "PUT", "GET", "DELETE"), "/v1.0/actors/{type}/{id}/reminders/{name}"),
    (("POST", "PUT", "DELETE"), "/v1.0/actors/{type}/{id}/timers/{name}"),
    (("GET",), "/v1.0/configuration/{store}"),
    (("GET",), "/v1.0/configuration/{store}/subscribe"),
    (("GET",), "/v1.0/configuration/{store}/{id}/unsubscribe"),
    (("GET",), "/v1.0-alpha1/configuration/{store}"),
    (("GET",), "/v1.0-alpha1/configuration/{store}/subscribe"),
    (("GET",), "/v1.0-alpha1/configuration/{store}/{id}/unsubscribe"),
    (("POST",), "/v1.0-alpha1/lock/{store}"),
    (("POST",), "/v1.0-alpha1/unlock/{store}"),
    (("PUT",), "/v1.0-alpha1/crypto/{component}/encrypt"),
    (("PUT",), "/v1.0-alpha1/crypto/{component}/decrypt"),
    (("POST",), "/v1.0-alpha1/jobs/schedule/{name}"),
    (("GET", "DELETE"), "/v1.0-alpha1/jobs/{name}"),
    (("POST",), "/v1.0-alpha1/conversation/{name}/converse"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{name}/start"),
    (("GET",), "/v1.0-beta1/workflows/{component}/{instance}"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{instance}/terminate"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{instance}/raiseEvent/{event}"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{instance}/pause"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{instance}/resume"),
    (("POST",), "/v1.0-beta1/workflows/{component}/{instance}/purge"),
    (("GET",), "/dapr/config"),
    (("GET",), "/dapr/subscribe"),
]

#: (method, path): what a busy sidecar sees, weighted towards state and invoke.
PATHS: list[tuple[str, str]] = [
    ("GET", "/v1.0/healthz"),
    ("GET", "/v1.0/healthz/outbound"),
    ("GET", "/v1.0/metadata"),
    ("GET", "/v1.0/state/statestore/order-1234"),
    ("GET", "/v1.0/state/statestore/order-1234"),
    ("DELETE", "/v1.0/state/statestore/cart%3A42"),
    ("POST", "/v1.0/state/statestore"),
    ("POST", "/v1.0/state/statestore/bulk"),
    ("POST", "/v1.0/state/statestore/transaction"),
    ("POST", "/v1.0-alpha1/state/statestore/query"),
    ("POST", "/v1.0/publish/pubsub/orders"),
    ("POST", "/v1.0/publish/pubsub/orders/eu/created"),
    ("POST", "/v1.0/invoke/checkout/method/checkout"),
    ("GET", "/v1.0/invoke/inventory/method/api/v2/items/sku-991"),
    ("PUT", "/v1.0/invoke/cart/method/carts/42/items"),
    ("GET", "/v1.0/secrets/vault/db-password"),
    ("GET", "/v1.0/secrets/vault/bulk"),
    ("POST", "/v1.0/bindings/kafka-out"),
    ("PUT", "/v1.0/actors/Counter/c-17/method/increment"),
    ("GET", "/v1.0/actors/Counter/c-17/state/count"),
    ("PUT", "/v1.0/actors/Counter/c-17/reminders/tick"),
    ("GET", "/v1.0/configuration/config/subscribe"),
    ("POST", "/v1.0-alpha1/lock/lockstore"),
    ("GET", "/v1.0-beta1/workflows/dapr/wf-123"),
    ("POST", "/v1.0-beta1/workflows/dapr/wf-123/raiseEvent/approved"),
    ("GET", "/v1.0/state/statestore/order-1234/"),  # trailing slash
    ("GET", "/unknown/route/falls/through"),  # miss: service invocation fallback
    ("PATCH", "/v1.0/state/statestore/k"),  # verb mismatch: miss
]


def build(cls):
    router = cls()
    for i, (methods, pattern) in enumerate(ROUTES):
        router.add(methods, pattern, i)
    return router


def measure(routers: dict[str, object], repeat: int, number: int) -> dict[str, list[float]]:
    """ns per match call, one sample per repeat and twin.

    The twins alternate repeat by repeat, so a noisy neighbour or a clock change
    hits both alike instead of skewing the ratio.
    """
    calls = number * len(PATHS)
    timers = {}
    for name, router in routers.items():
        def run(match=router.match, paths=PATHS):
            for method, path in paths:
                match(method, path)
        timers[name] = timeit.Timer(run)
    samples: dict[str, list[float]] = {name: [] for name in routers}
    for _ in range(repeat):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(number) * 1e9 / calls)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{model}, nproc={os.cpu_count()}, {platform.system()} {platform.machine()}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--number", type=int, default=200)
    ap.add_argument("--per-path", action="store_true", help="also print the median per path")
    args = ap.parse_args(argv)

    twins = {"py": build(RouterPy)}
    if RouterCy is None:
        print("note: pydapr._speedups._router is not built; timing the Python twin only")
    else:
        twins["cy"] = build(RouterCy)
        for method, path in PATHS:  # never time two different answers
            assert twins["py"].match(method, path) == twins["cy"].match(method, path), path

    print(machine())
    print(f"{len(ROUTES)} routes, {len(PATHS)} paths, {args.repeat} repeats x {args.number} passes")
    samples = measure(twins, args.repeat, args.number)
    medians = {}
    for name, values in samples.items():
        medians[name] = statistics.median(values)
        print(f"{name}: median {medians[name]:8.1f} ns/match   p99 {p99(values):8.1f} ns/match")
    if "cy" in medians:
        pairs = [p / c for p, c in zip(samples["py"], samples["cy"])]
        print(f"ratio py/cy: {medians['py'] / medians['cy']:.2f}x of the medians, "
              f"{statistics.median(pairs):.2f}x median of paired repeats")

    if args.per_path:
        print(f"\n{'path':60} " + " ".join(f"{n:>8}" for n in twins))
        for method, path in PATHS:
            cells = []
            for router in twins.values():
                t = timeit.Timer(lambda r=router: r.match(method, path))
                cells.append(statistics.median(t.repeat(repeat=15, number=2000)) * 1e9 / 2000)
            print(f"{method + ' ' + path:60.60} " + " ".join(f"{c:8.1f}" for c in cells))


if __name__ == "__main__":
    main()
