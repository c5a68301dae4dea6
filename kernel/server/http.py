"""The HTTP/1.1 API server: listeners, the deadline sweeper and the connection protocol.

The protocol (:class:`HTTPServerProtocol`, an asyncio protocol over httptools,
built for uvloop) comes from :mod:`pydapr.http_protocol`: the compiled twin
when built, else the pure-Python reference. Limits are enforced while reading
(see :mod:`pydapr._http_py`); this module adds the per-server sweeper that
checks every connection's deadline about once a second, so no timer is armed
per request.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from typing import Any, Callable

from .._http_common import Dispatch, DispatchCell, HTTPLimits
from ..http_protocol import IMPLEMENTATION, HTTPServerProtocol, render

__all__ = ["HTTPLimits", "HTTPServerProtocol", "DispatchCell", "serve_http", "render",
           "IMPLEMENTATION", "remove_stale_socket"]

log = logging.getLogger("pydapr.http")
_SWEEPERS: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones


async def serve_http(dispatch: Dispatch | DispatchCell, hosts: list[str], port: int,
                     limits: HTTPLimits = HTTPLimits(), sock: Any = None,
                     protocol: Callable[[DispatchCell, HTTPLimits, set], Any] | None = None,
                     unix_path: str | None = None) -> tuple[list, set]:
    """Listen on each host; returns the asyncio servers and the live connection set.

    :param dispatch: the request handler, or a :class:`DispatchCell` to swap it later.
    :param protocol: the connection protocol class; the selected twin by default
        (tests pass each twin in turn).
    :param unix_path: listen on this Unix socket instead of ``hosts``/``port``; the file
        is readable and writable by this user only.
    """
    loop = asyncio.get_running_loop()
    conns: set = set()
    cell = dispatch if isinstance(dispatch, DispatchCell) else DispatchCell(dispatch)
    proto = HTTPServerProtocol if protocol is None else protocol
    log.debug("http protocol: %s", IMPLEMENTATION if protocol is None else proto.__module__)

    def factory() -> Any:
        return proto(cell, limits, conns)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(1.0, limits.header_timeout / 4))
            if not any(srv.is_serving() for srv in servers) and not conns:
                return  # every listener closed and every connection gone
            now = loop.time()
            for conn in list(conns):
                conn.check_deadline(now)

    sweeper = loop.create_task(sweep())
    servers = []
    if sock is not None:
        servers.append(await loop.create_server(factory, sock=sock, backlog=1024))
    elif unix_path is not None:
        remove_stale_socket(unix_path)
        old = os.umask(0o177)  # created 0600: no window in which another user could connect
        try:
            servers.append(await loop.create_unix_server(factory, unix_path, backlog=1024))
        finally:
            os.umask(old)
    else:
        for host in hosts:
            servers.append(await loop.create_server(factory, host, port, backlog=1024,
                                                    reuse_address=True))
    _SWEEPERS.add(sweeper)
    sweeper.add_done_callback(_SWEEPERS.discard)
    return servers, conns


def remove_stale_socket(path: str) -> None:
    """Remove a socket file a previous run left behind. A file that is not a socket, or a
    socket something still answers on, is refused: never take over another process's API."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover of a run that did not exit cleanly
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by another process (another sidecar with this app id?)")
