"""``configuration.postgresql``: a table of key/value/version/metadata, watched with LISTEN/NOTIFY.

As in Dapr, the table and the trigger that sends notifications belong to
the operator: the trigger calls ``pg_notify(<channel>, json)`` with
``{"action": TG_OP, "data": row_to_json(row)}``, and a subscription names the
channel in its ``pgNotifyChannel`` metadata (this component also accepts a
default ``notifyChannel`` in its own metadata). One listening connection
serves every subscription. The table name is checked against a strict
pattern because SQL cannot take it as a parameter; keys always are parameters.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.components._common.postgres_settings import connect_kwargs, pool
from pydapr.errors import ComponentError, ConfigError
from pydapr.kinds.configuration import (ConfigurationItem, ConfigurationStore, UnknownSubscription,
                                        UpdateHandler)
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["PostgresConfiguration", "PostgresConfigurationMetadata"]

log = logging.getLogger("pydapr.configuration.postgresql")

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


@dataclass(frozen=True)
class PostgresConfigurationMetadata:
    connection_string: str = meta(sensitive=True, doc="pgx URL or key=value connection string")
    table: str = meta(name=("table", "configTable"), doc="table with key, value, version, metadata")
    notify_channel: str = meta("", doc="default pgNotifyChannel for subscriptions")
    timeout: Duration = meta(Duration(20.0), doc="timeout of one query")


class _Sub:
    """One subscription; a worker delivers its changes one at a time, in notification order."""

    def __init__(self, channel: str, keys: frozenset[str], handler: UpdateHandler) -> None:
        self.channel, self.keys, self.handler = channel, keys, handler
        self.queue: asyncio.Queue[tuple[str, ConfigurationItem]] = asyncio.Queue()
        self.worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            key, item = await self.queue.get()
            try:
                await self.handler({key: item})
            except Exception as exc:
                log.warning("delivering the change of %r failed: %s", key, exc)


def _item(value: Any, version: Any, metadata: Any) -> ConfigurationItem:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = {}
    md = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    return ConfigurationItem("" if value is None else str(value),
                             "" if version is None else str(version), md)


class PostgresConfiguration(ConfigurationStore):
    metadata_type = PostgresConfigurationMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self._pool: Any = None
        self._listener: Any = None
        self._md: PostgresConfigurationMetadata | None = None
        self._subs: dict[str, _Sub] = {}
        self._channels: set[str] = set()
        self._lock = asyncio.Lock()

    async def init(self, metadata: PostgresConfigurationMetadata) -> None:
        if not _TABLE.match(metadata.table):
            raise ConfigError(f"table {metadata.table!r} is not a plain (schema.)table name")
        connect_kwargs(metadata.connection_string)  # fail on a bad string before connecting
        self._md = metadata
        self._pool = await pool(metadata.connection_string, min_size=1, max_size=4,
                                command_timeout=metadata.timeout)
        exists = await self._pool.fetchval("SELECT to_regclass($1) IS NOT NULL", metadata.table)
        if not exists:
            raise ConfigError(f"table {metadata.table!r} does not exist")

    async def close(self) -> None:
        for sub_id in list(self._subs):
            await self.unsubscribe(sub_id)
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigurationItem]:
        table = self._md.table
        try:
            if keys:
                rows = await self._pool.fetch(
                    f"SELECT key, value, version, metadata FROM {table} "
                    "WHERE key = ANY($1::text[])",
                    list(keys))
            else:
                rows = await self._pool.fetch(f"SELECT key, value, version, metadata FROM {table}")
        except Exception as exc:
            raise ComponentError(f"postgresql: {exc}") from None
        return {r["key"]: _item(r["value"], r["version"], r["metadata"]) for r in rows}

    async def subscribe(self, sub_id: str, keys: list[str], metadata: dict[str, str],
                        handler: UpdateHandler) -> None:
        channel = next((v for k, v in metadata.items() if k.lower() == "pgnotifychannel"),
                       self._md.notify_channel)
        if not channel:
            raise ComponentError("subscribe metadata pgNotifyChannel is required (the channel "
                                 "the table's trigger notifies)")
        async with self._lock:
            if self._listener is None or self._listener.is_closed():
                import asyncpg
                self._listener = await asyncpg.connect(**connect_kwargs(self._md.connection_string))
                self._channels.clear()
            if channel not in self._channels:
                await self._listener.add_listener(channel, self._notified)
                self._channels.add(channel)
        self._subs[sub_id] = _Sub(channel, frozenset(keys), handler)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
            row = event.get("data") or {}
            row = {str(k).lower(): v for k, v in row.items()}
            key = str(row["key"])
        except (ValueError, KeyError, AttributeError, TypeError):
            log.warning("%s: ignored a notification on %r that is not the trigger's JSON",
                        self.info.name, channel)
            return
        if str(event.get("action", "")).upper() == "DELETE":
            item = ConfigurationItem("")
        else:
            item = _item(row.get("value"), row.get("version"), row.get("metadata"))
        for sub in self._subs.values():
            if sub.channel == channel and (not sub.keys or key in sub.keys):
                sub.queue.put_nowait((key, item))

    async def unsubscribe(self, sub_id: str) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            raise UnknownSubscription(sub_id)
        sub.worker.cancel()


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("configuration.postgresql", "v1", PostgresConfiguration,
                          aliases=("configuration.postgres",), status="alpha")]
