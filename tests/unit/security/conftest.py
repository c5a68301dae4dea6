"""An in-process sidecar with only the secrets and security plugins, for fast unit tests.

``runtime(config=..., resources=..., **options)`` builds a Runtime the way
pydaprd does (real entry points, real Configuration and resources files),
then ``call(rt, method, path, headers)`` runs one request through
``rt.dispatch`` and ``raw(port, bytes)`` speaks HTTP/1.1 byte for byte.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pydapr import hookimpl
from pydapr.daprd.options import Options
from pydapr.errors import APIError
from pydapr.pluginmanager import PluginManager, discover
from pydapr.registry import BuildingBlock, Route
from pydapr.runtime import Runtime
from pydapr.server.request import Request, Response


def _ours(name: str) -> bool:
    return name in ("api.metadata", "api.secrets", "api.security") or name.startswith(
        ("secretstores.local.", "middleware.http."))


class _EchoBlock:
    """What a building block sees: ``/v1.0/echo`` answers the request's headers; gRPC
    ``GetState`` answers the metadata keys and ``SubscribeConfigurationAlpha1`` streams them."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def routes(self) -> list[Route]:
        return [Route(("GET", "POST", "OPTIONS"), "/v1.0/echo", self.echo, "echo"),
                Route(("GET",), "/v1.0/echo/async", self.echo_async, "echo")]

    def grpc_methods(self) -> dict[str, Any]:
        return {"GetState": self.grpc_echo, "SubscribeConfigurationAlpha1": self.grpc_stream}

    def echo(self, req: Request) -> Response:
        return Response.json({"headers": req.headers, "query": req.query_string})

    async def echo_async(self, req: Request) -> Response:
        return self.echo(req)

    async def grpc_echo(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import state_pb2
        keys = sorted(k for k, _ in context.invocation_metadata())
        return state_pb2.GetStateResponse(data=json.dumps(keys).encode())

    async def grpc_stream(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import configuration_pb2
        for k, _ in context.invocation_metadata():
            yield configuration_pb2.SubscribeConfigurationResponse(id=k)


class _EchoPlugin:
    @hookimpl
    def pydapr_building_blocks(self) -> list[BuildingBlock]:
        return [BuildingBlock("api.echo", _EchoBlock)]


@pytest.fixture
async def runtime(tmp_path):
    made: list[Runtime] = []

    async def make(config: str | None = None, resources: str = "", start: bool = True,
                   plugins: tuple = (), **options: Any) -> Runtime:
        rdir = tmp_path / f"resources{len(made)}"
        rdir.mkdir()
        (rdir / "resources.yaml").write_text(resources)
        cfg = []
        if config is not None:
            cfg = [tmp_path / f"config{len(made)}.yaml"]
            cfg[0].write_text(config)
        opts = Options(app_id="secapp", resources_paths=[str(rdir)], config=[str(c) for c in cfg],
                       **options)
        pm = PluginManager({k: v for k, v in discover().items() if _ours(k)})
        for plugin in (_EchoPlugin(), *plugins):  # in-test plugins (objects with hookimpls)
            pm.register(plugin)
        rt = Runtime(opts, pm)
        rt.load()
        rt.build_blocks()
        made.append(rt)
        if start:
            await rt.init_components()
            rt.outbound_ready = True
            await rt.start_blocks()
            rt.ready = True
        return rt
    yield make
    for rt in made:
        await rt.stop_blocks()
        await rt.close_components()


async def _call(rt: Runtime, method: str, path: str, headers: dict[str, str] | None = None,
                query: str = "", body: bytes = b"", peer: Any = ("127.0.0.1", 40000)) -> Response:
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    req = Request(method, path, query, hdrs, body, peer)
    try:
        result = rt.dispatch(req)
        return result if type(result) is Response else await result
    except APIError as err:
        return Response.from_error(err)


async def _raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        blob = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = blob.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def call():
    """``await call(rt, method, path, headers)``: one request through the full dispatch
    (wrappers, router, fallback) as the server runs it; APIError rendered as the server does."""
    return _call


@pytest.fixture
def raw():
    """``await raw(port, bytes)``: send bytes exactly as given (ask to close); returns
    ``(status, headers, body)``."""
    return _raw


@pytest.fixture
async def serve():
    """``await serve(rt)`` -> port of an HTTP server running ``rt.dispatch``."""
    from pydapr.server.http import serve_http
    servers: list = []

    async def start(rt: Runtime) -> int:
        found, _ = await serve_http(rt.dispatch, ["127.0.0.1"], 0)
        servers.extend(found)
        return found[0].sockets[0].getsockname()[1]
    yield start
    for s in servers:
        s.close()


@pytest.fixture
async def grpc_port():
    """``await grpc_port(rt, extra_handlers)`` -> port of a gRPC API server built as pydaprd
    builds it."""
    from pydapr.server.grpc import dapr_service, serve_grpc
    from pydapr.testing import free_port
    servers: list = []

    async def start(rt: Runtime, extra: list | None = None) -> int:
        port = free_port()
        handlers = [dapr_service(rt.grpc_methods, rt.stash.get("grpc_wrap")), *(extra or [])]
        servers.append(await serve_grpc(handlers, ["127.0.0.1"], port, 4 << 20,
                                        rt.stash.get("grpc_interceptors")))
        return port
    yield start
    for s in servers:
        await s.stop(None)
