"""``pydaprd``: wire Options into a Runtime, serve, and stop gracefully.

The HTTP API listens as soon as routes are built; components, the gRPC API
and the app channel come up in the background, and ``/v1.0/healthz`` says
when everything is ready. SIGTERM/SIGINT stop within the graceful budget.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Sequence

from .. import __version__
from ..errors import APIError, ConfigError, PydaprError
from ..logs import setup_logging
from ..server.http import DispatchCell, HTTPLimits, serve_http
from ..server.request import Request, Response
from .options import Options, parse

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["main", "serve"]

log = logging.getLogger("pydapr.daprd")


async def _bring_up(rt: Runtime) -> None:
    """Everything after the HTTP API is listening; a failure stops the sidecar."""
    o = rt.options
    try:
        if o.app_port:
            from ..server.appchannel import AppChannel
            rt.app_channel = AppChannel(o)
        if rt.identity is not None:
            await rt.identity.start()
        init = asyncio.ensure_future(rt.init_components())
        from ..server.grpc import dapr_service, serve_grpc
        wrap = rt.stash.get("grpc_wrap")
        rt.grpc_server = await serve_grpc([dapr_service(rt.grpc_methods, wrap)],
                                          o.dapr_listen_addresses, o.dapr_grpc_port, o.max_body_size,
                                          rt.stash.get("grpc_interceptors"),
                                          o.api_socket("grpc") if o.unix_domain_socket else None)
        rt.unready_targets.discard("grpc")
        await init
        rt.outbound_ready = True
        if rt.app_channel is not None:
            if not await rt.app_channel.wait_for_port():
                log.warning("app port %s is not accepting connections yet", o.app_port)
            rt.app_channel.start_health_checks()
        await rt.start_blocks()
        await rt.pm.startup(rt)
        # what start-up loaded (modules, protos, plugins) lives until exit: move it out of the
        # collector's reach, or every full collection walks it all and stalls requests for ms
        gc.collect()
        gc.freeze()
        rt.ready = True
        if o.unix_domain_socket:
            log.info("dapr initialized. Status: Running. app id %s, HTTP unix:%s, gRPC unix:%s",
                     rt.app_id, o.api_socket("http"), o.api_socket("grpc"))
        else:
            log.info("dapr initialized. Status: Running. app id %s, HTTP %s, gRPC %s",
                     rt.app_id, o.dapr_http_port, o.dapr_grpc_port)
    except Exception as exc:
        if isinstance(exc, PydaprError):
            log.error("fatal: %s", exc)
        else:
            log.exception("fatal error during start-up")
        rt.request_shutdown(1)


def _booting(req: Request) -> Response:
    """What the HTTP API answers while plugins load: not ready, like daprd's health endpoints."""
    path = req.path.rstrip("/")
    if path == "/v1.0/healthz":
        err = APIError("ERR_HEALTH_NOT_READY", "dapr is not ready: [loading]")
    elif path == "/v1.0/healthz/outbound":
        err = APIError("ERR_OUTBOUND_HEALTH_NOT_READY", "dapr is not ready: [loading]")
    else:
        err = APIError("ERROR", "the sidecar is starting; retry once /v1.0/healthz/outbound "
                       "answers 204", http_status=503)
    return Response.from_error(err)


def _wants_identity(rt: Runtime) -> bool:
    """Import the identity stack (cryptography, TLS) only when mTLS can be on."""
    o = rt.options
    return bool(o.enable_mtls or o.cert_chain or o.cert_key
                or rt.config.section("mtls").get("enabled") is True)


async def serve(options: Options) -> int:
    o = options
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Listen first: the API accepts connections (answering "not ready") while plugins load.
    cell = DispatchCell(_booting)
    limits = HTTPLimits(max_body=o.max_body_size, max_header_bytes=max(o.read_buffer_size, 16 << 10))
    http_servers, conns = await serve_http(
        cell, o.dapr_listen_addresses, o.dapr_http_port, limits,
        unix_path=o.api_socket("http") if o.unix_domain_socket else None)
    await asyncio.sleep(0)
    try:
        from ..runtime import Runtime
        rt = Runtime(options)
        rt.stopped = stop
        rt.grpc_server = None
        rt.load()
        if _wants_identity(rt):
            from ..identity import Identity
            rt.identity = Identity.for_runtime(rt)
        rt.build_blocks()
    except BaseException:
        for s in http_servers:
            s.close()
        raise
    cell.fn = rt.dispatch
    rt.http_servers = http_servers
    up = loop.create_task(_bring_up(rt))
    await rt.stopped.wait()
    log.info("stopping (graceful budget %.1fs)", o.graceful_shutdown_seconds)
    up.cancel()
    try:
        await asyncio.wait_for(_shutdown(rt, http_servers, conns), o.graceful_shutdown_seconds)
    except asyncio.TimeoutError:
        log.warning("graceful shutdown exceeded %.1fs; exiting", o.graceful_shutdown_seconds)
    if o.unix_domain_socket:  # remove the sockets this process created, not another's
        for api in ("http", "grpc") if rt.grpc_server is not None else ("http",):
            with contextlib.suppress(OSError):
                os.unlink(o.api_socket(api))
    return rt.exit_code


async def _shutdown(rt: Runtime, http_servers: list, conns: set) -> None:
    for s in http_servers:
        s.close()
    for c in list(conns):
        c.shutdown()
    try:
        await rt.pm.shutdown(rt)
    except Exception:
        log.exception("pydapr_shutdown hook failed")
    await rt.stop_blocks()
    if rt.grpc_server is not None:
        await rt.grpc_server.stop(1.0)
    if rt.app_channel is not None:
        await rt.app_channel.close()
    await rt.close_components()
    if rt.identity is not None:
        await rt.identity.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        options, ns = parse(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if ns.version or ns.build_info:
        print(f"pydaprd {__version__}")
        return 0
    setup_logging(options.log_level, options.log_as_json, options.app_id)
    os.environ.update({"APP_ID": options.app_id, "DAPR_HTTP_PORT": str(options.dapr_http_port),
                       "DAPR_GRPC_PORT": str(options.dapr_grpc_port)})
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio still works
        runner = asyncio.run
    try:
        return runner(serve(options))
    except PydaprError as exc:
        log.error("fatal: %s", exc)
        return 1
    except OSError as exc:
        log.error("fatal: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
