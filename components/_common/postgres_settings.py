"""PostgreSQL connection strings as Dapr components write them, turned into asyncpg arguments.

Dapr's PostgreSQL components take pgx connection strings, which are either
URLs (``postgres://user@host/db``) or libpq ``key=value`` lists
(``host=localhost user=postgres dbname=test``); asyncpg accepts only the
first, so the second is parsed here into keyword arguments.
"""
from __future__ import annotations

import re
from typing import Any

from pydapr.errors import ConfigError

__all__ = ["connect_kwargs", "pool"]

_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_NAMES = {"host": "host", "hostaddr": "host", "port": "port", "user": "user",
          "password": "password", "dbname": "database", "database": "database",
          "sslmode": "ssl", "connect_timeout": "timeout"}
# accepted and ignored: pgx pool settings and libpq options asyncpg has no use for
_IGNORED = {"pool_max_conns", "pool_min_conns", "pool_max_conn_lifetime", "pool_max_conn_idle_time",
            "pool_health_check_period", "application_name", "search_path", "sslrootcert",
            "sslcert", "sslkey", "target_session_attrs"}


def connect_kwargs(conn_str: str) -> dict[str, Any]:
    """asyncpg ``connect``/``create_pool`` keyword arguments for a pgx connection string.

    :raises ConfigError: naming the key that is not understood (never echoing the value).
    """
    text = conn_str.strip()
    if not text:
        raise ConfigError("connectionString is empty")
    if "://" in text:
        return {"dsn": text}
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(text):
        m = _PAIR.match(text, pos)
        if m is None or m.end() == pos:
            raise ConfigError("connectionString is neither a postgres:// URL nor key=value pairs")
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pos = m.end()
        if key in _IGNORED:
            continue
        if key not in _NAMES:
            raise ConfigError(f"connectionString: unknown key {key!r}")
        name = _NAMES[key]
        if name in ("port", "timeout"):
            out[name] = int(value)
        elif name == "ssl":
            out[name] = None if value in ("disable", "") else value
        else:
            out[name] = value
    return {k: v for k, v in out.items() if v is not None}


async def pool(conn_str: str, **extra: Any) -> Any:
    """An asyncpg pool for a Dapr connection string (connects once to fail fast)."""
    import asyncpg
    return await asyncpg.create_pool(**connect_kwargs(conn_str), **extra)
