"""``bindings.cron``: an input binding that fires on a schedule (spec 4.3).

Schedules use Dapr's syntax: 5 fields (minute precision), 6 fields with
seconds first, ``@every <go duration>`` and the descriptors ``@yearly``
(``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``),
``@hourly``. Field schedules follow the sidecar's local time. A tick's
event has empty data and the metadata ``timeZone`` and ``readTimeUTC`` (Go's
time format), as Dapr sends them.

Ticks do not wait for the app: each one is delivered in its own task, so a
slow app does not shift the schedule. At most ``MAX_IN_FLIGHT`` deliveries
run at once; a tick beyond that is skipped and logged, rather than piling up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from pydapr import hookimpl
from pydapr.durations import parse_duration
from pydapr.errors import ConfigError
from pydapr.kinds.bindings import BindingEvent, BindingHandler, InputBinding
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["CronBinding", "CronMetadata", "Schedule", "parse_schedule", "go_time"]

log = logging.getLogger("pydapr.bindings.cron")

MAX_IN_FLIGHT = 8

_DESCRIPTORS = {"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
                "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
                "@hourly": "0 0 * * * *"}


@dataclass(frozen=True)
class CronMetadata:
    schedule: str = meta(doc="cron expression, @every <duration> or a descriptor such as @daily")


class Schedule:
    """When a schedule fires next: ``next_after(epoch_seconds) -> epoch_seconds``."""

    def __init__(self, text: str, next_after: Callable[[float], float]) -> None:
        self.text = text
        self.next_after = next_after


def parse_schedule(text: str) -> Schedule:
    """Parse Dapr's schedule syntax. :raises ConfigError: saying what is wrong."""
    spec = text.strip()
    if spec.lower().startswith("@every"):
        arg = spec[len("@every"):].strip()
        try:
            every = parse_duration(arg)
        except ValueError as exc:
            raise ConfigError(f"schedule {text!r}: {exc}") from None
        if every < 0.001:
            raise ConfigError(f"schedule {text!r}: the interval must be at least 1ms")
        return Schedule(spec, lambda now: now + every)
    expr = _DESCRIPTORS.get(spec.lower(), spec)
    if expr.startswith("@"):
        raise ConfigError(f"schedule {text!r}: unknown descriptor (use @every <duration>, "
                          f"{', '.join(sorted(_DESCRIPTORS))})")
    fields = expr.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ConfigError(f"schedule {text!r}: expected 5 fields (minute hour day month weekday) "
                          "or 6 with seconds first")
    from croniter import croniter
    expr = " ".join(f.replace("?", "*") for f in fields)
    if not croniter.is_valid(expr, second_at_beginning=True):
        raise ConfigError(f"schedule {text!r}: not a valid cron expression")

    def next_after(now: float) -> float:
        local = datetime.fromtimestamp(now).astimezone()
        it = croniter(expr, local, second_at_beginning=True)
        return it.get_next(float)
    return Schedule(spec, next_after)


def go_time(epoch: float) -> str:
    """``time.Time.String()`` of Go for a UTC instant: ``2024-01-02 03:04:05.123456 +0000 UTC``."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"


class CronBinding(InputBinding):
    metadata_type = CronMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.schedule: Schedule | None = None
        self._tasks: list[asyncio.Task] = []
        self._in_flight: set[asyncio.Task] = set()

    async def init(self, metadata: CronMetadata) -> None:
        self.schedule = parse_schedule(metadata.schedule)

    async def read(self, handler: BindingHandler) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(handler)))

    async def _run(self, handler: BindingHandler) -> None:
        loop = asyncio.get_running_loop()
        due = self.schedule.next_after(time.time())
        while True:
            await asyncio.sleep(max(0.0, due - time.time()))
            now = time.time()
            if now < due:  # woke a little early: the clock is coarser than the schedule
                continue
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                log.warning("%s: skipped a tick, %d deliveries are still running",
                            self.info.name, len(self._in_flight))
            else:
                event = BindingEvent(b"", {"timeZone": "Local", "readTimeUTC": go_time(now)})
                task = loop.create_task(self._deliver(handler, event))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            due = self.schedule.next_after(due)
            if due <= now:  # fell behind (a suspended host): resume from now, no burst of ticks
                due = self.schedule.next_after(now)

    async def _deliver(self, handler: BindingHandler, event: BindingEvent) -> None:
        try:
            await handler(event)
        except Exception as exc:
            log.warning("%s: delivering a tick failed: %s", self.info.name, exc)

    async def close(self) -> None:
        await self.stop_tasks(self._tasks)
        await self.stop_tasks(list(self._in_flight))


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.cron", "v1", CronBinding)]
