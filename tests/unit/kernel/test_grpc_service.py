"""The Dapr gRPC service's handler table: built on the first call, complete, foreign RPCs left alone."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import grpc

from pydapr.server.grpc import DaprService, rpc_names


def details(method: str) -> SimpleNamespace:
    return SimpleNamespace(method=method, invocation_metadata=())


def test_the_table_is_built_on_the_first_dapr_call_and_covers_every_rpc() -> None:
    async def get_state(request, context):  # pragma: no cover - never called here
        raise AssertionError

    wrapped: list[str] = []

    def wrap(name, fn):
        wrapped.append(name)
        return fn
    svc = DaprService({"GetState": get_state}, wrap)
    assert svc.service(details("/grpc.health.v1.Health/Check")) is None
    assert svc._handlers is None  # a foreign RPC builds nothing
    handler = svc.service(details("/dapr.proto.runtime.v1.Dapr/GetState"))
    assert isinstance(handler, grpc.RpcMethodHandler) and not handler.request_streaming
    assert sorted(wrapped) == sorted(rpc_names())  # every RPC, wrapped once
    assert svc.service(details("/dapr.proto.runtime.v1.Dapr/NoSuchRpc")) is None
    stream = svc.service(details("/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1"))
    assert stream is not None and stream.request_streaming and stream.response_streaming


def test_building_the_sidecars_blocks_loads_no_sdk_proto() -> None:
    """An app that only speaks HTTP never pays for the SDK's protos (about 6 MB)."""
    code = ("import sys, asyncio\n"
            "from pydapr.daprd.options import parse\n"
            "from pydapr.runtime import Runtime\n"
            "async def main():\n"
            "    rt = Runtime(parse(['--app-id', 'x'])[0])\n"
            "    rt.load()\n"
            "    rt.build_blocks()\n"
            "asyncio.run(main())\n"
            "print(sorted(m for m in sys.modules if m.startswith('dapr.proto')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
