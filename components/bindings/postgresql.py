"""``bindings.postgresql``: ``exec``, ``query`` and ``close`` with SQL and bound parameters.

The statement is request metadata ``sql``; values come only through
``params`` (a JSON array bound to ``$1``, ``$2``...), so nothing the app sends
is ever spliced into SQL text. ``query`` answers a JSON array of rows, each an
array of column values (Dapr's shape); ``exec`` answers metadata with
``rows-affected`` and timings. ``close`` releases the pool's connections; the
next operation opens new ones.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from pydapr import hookimpl
from pydapr.components._common.postgres_settings import connect_kwargs, pool
from pydapr.errors import ComponentError
from pydapr.kinds.bindings import InvokeRequest, InvokeResponse, OutputBinding, metadata_value
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["PostgresBinding", "PostgresBindingMetadata"]


@dataclass(frozen=True)
class PostgresBindingMetadata:
    connection_string: str = meta(name=("connectionString", "url"), sensitive=True,
                                  doc="pgx URL or key=value connection string")
    timeout: Duration = meta(Duration(20.0), doc="timeout of one statement")
    max_conns: int = meta(4, doc="largest number of pooled connections")


def _params(text: str) -> list[Any]:
    if not text:
        return []
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ComponentError(f"params must be a JSON array: {exc}") from None
    if not isinstance(params, list):
        raise ComponentError("params must be a JSON array")
    return params


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


class PostgresBinding(OutputBinding):
    metadata_type = PostgresBindingMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.md: PostgresBindingMetadata | None = None
        self._pool: Any = None

    async def init(self, metadata: PostgresBindingMetadata) -> None:
        connect_kwargs(metadata.connection_string)
        self.md = metadata
        await self._open()

    async def _open(self) -> Any:
        if self._pool is None:
            self._pool = await pool(self.md.connection_string, min_size=1,
                                    max_size=max(1, self.md.max_conns),
                                    command_timeout=self.md.timeout)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            p, self._pool = self._pool, None
            await p.close()

    async def ping(self) -> None:
        await (await self._open()).fetchval("SELECT 1")

    def operations(self) -> list[str]:
        return ["exec", "query", "close"]

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        if request.operation == "close":
            await self.close()
            return None
        sql = metadata_value(request.metadata, "sql")
        if not sql.strip():
            raise ComponentError("metadata sql is required")
        params = _params(metadata_value(request.metadata, "params"))
        start = time.time()
        try:
            db = await self._open()
            if request.operation == "query":
                rows = await db.fetch(sql, *params)
                data = orjson.dumps([list(r.values()) for r in rows], default=str)
                affected = None
            else:
                status = await db.execute(sql, *params)
                data = b""
                tail = status.rsplit(" ", 1)[-1]
                affected = tail if tail.isdigit() else "0"
        except Exception as exc:
            raise ComponentError(f"postgresql: {type(exc).__name__}: {exc}") from None
        end = time.time()
        md = {"operation": request.operation, "sql": sql, "start-time": _stamp(start),
              "end-time": _stamp(end), "duration": f"{(end - start) * 1000:.3f}ms"}
        if affected is not None:
            md["rows-affected"] = affected
        return InvokeResponse(data, md)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.postgresql", "v1", PostgresBinding,
                          aliases=("bindings.postgres",))]
