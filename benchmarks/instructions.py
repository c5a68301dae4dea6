"""Instructions a sidecar executes per request, counted by valgrind's callgrind.

Wall-clock latency on a shared VM moves by tens of microseconds between runs; an
instruction count does not (the same build, request and environment give the same
count), so it shows what a change to a hot path saves. The sidecar runs under
callgrind with instrumentation off while it starts; instrumentation is turned on
(``callgrind_control -i on``) for ``--requests`` keep-alive requests from one client,
after 200 warm-up requests, and the total is divided by the number of requests. The
sidecar has one pub/sub named ``bench`` on each broker of ``--brokers`` in turn (as in
``bench_pubsub.py``) and no app.

Usage: ``python benchmarks/instructions.py [--requests 2000] [--brokers in-memory,redis,rabbitmq]``
prints instructions per request for ``GET /v1.0/healthz`` and for a JSON publish to
``bench``. Needs valgrind (``apt-get install -y valgrind``).
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

from bench_pubsub import BROKERS, KeepAlive, resources

from pydapr.testing import free_port

REQUESTS = {
    "GET /v1.0/healthz": lambda c: c.get("/v1.0/healthz"),
    "POST /v1.0/publish/bench/orders (JSON)": lambda c: c.post("/v1.0/publish/bench/orders",
                                                               b'{"order": 1}'),
}


class Client(KeepAlive):
    def get(self, path: str) -> int:
        self.sock.sendall(b"GET %s HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" % path.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        return int(data.split(b" ", 2)[1])


def count(broker: str, request: str, n: int) -> float:
    folder = tempfile.mkdtemp(prefix="pydapr-instr-")
    type_name, _, md = BROKERS[broker]
    with open(os.path.join(folder, "pubsub.yaml"), "w") as f:
        f.write(resources(type_name, md, "instr"))
    port = free_port()
    out = os.path.join(folder, "callgrind.out")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, "-m", "pydapr.daprd.app", "--app-id", "instr",
         "--dapr-http-port", str(port), "--dapr-grpc-port", "0", "--dapr-internal-grpc-port", "0",
         "--resources-path", folder, "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = None
        for _ in range(600):  # start-up under valgrind takes tens of seconds
            try:
                client = Client(port)
                if REQUESTS["GET /v1.0/healthz"](client) == 204:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the sidecar did not start under valgrind")
        send = REQUESTS[request]
        for _ in range(200):
            assert send(client) in (200, 204)
        control = ["callgrind_control", "-i", "on", str(proc.pid)]
        subprocess.run(control, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for _ in range(n):
            send(client)
        subprocess.run(control[:2] + ["off", str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        proc.terminate()
        proc.wait()
    total = 0
    for path in glob.glob(out + "*"):  # one file per dump; a file's count is on "totals:"
        with open(path) as f:
            total += max((int(line.split()[1]) for line in f
                          if line.startswith(("totals:", "summary:"))), default=0)
    return total / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--brokers", default=",".join(BROKERS))
    args = ap.parse_args()
    brokers = args.brokers.split(",")
    first = list(REQUESTS)[0]
    print(f"{first}: {count(brokers[0], first, args.requests):,.0f} instructions per request",
          flush=True)
    for broker in brokers:
        for request in list(REQUESTS)[1:]:
            per = count(broker, request, args.requests)
            print(f"{request} on {broker}: {per:,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    main()
