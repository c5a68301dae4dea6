"""Reachability of the local backends that component tests use."""
from __future__ import annotations

import os
import socket

__all__ = ["SERVERS", "server_reachable", "require_server"]

#: name -> (host, port) of the local servers tests use
SERVERS = {
    "redis": ("127.0.0.1", 6379),
    "postgres": ("127.0.0.1", 5432),
    "rabbitmq": ("127.0.0.1", 5672),
    "nats": ("127.0.0.1", 4222),
    "mqtt": ("127.0.0.1", 1883),
    "mariadb": ("127.0.0.1", 3306),
}


def server_reachable(name: str, timeout: float = 1.0) -> bool:
    host, port = SERVERS[name]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str) -> None:
    """Fail (``CI=true``) or skip (elsewhere, with the reason) when ``name`` is unreachable."""
    import pytest
    if server_reachable(name):
        return
    host, port = SERVERS[name]
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a test that needs a server must not skip)")
    pytest.skip(reason)
