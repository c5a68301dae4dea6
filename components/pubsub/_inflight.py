"""Bounded concurrent delivery shared by the broker components.

A reader asks :meth:`InFlight.free` how many messages it may fetch, then
:meth:`InFlight.start` runs each delivery as a task. The limit is per
subscription (16 by default, never one at a time unless the subscription
asks for strict order).
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine

__all__ = ["InFlight"]


class InFlight:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.running: set[asyncio.Task] = set()
        self._slot = asyncio.Event()

    @property
    def ordered(self) -> bool:
        return self.limit == 1

    async def free(self) -> int:
        """Wait until at least one slot is free; returns how many are."""
        while len(self.running) >= self.limit:
            self._slot.clear()
            await self._slot.wait()
        return self.limit - len(self.running)

    def start(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self._slot.set()
        if not task.cancelled():
            task.exception()  # retrieved: delivery errors are handled inside the coroutine

    async def drain(self, timeout: float = 5.0) -> None:
        """Let deliveries in progress finish (then cancel what is left)."""
        if self.running:
            _, pending = await asyncio.wait(set(self.running), timeout=timeout)
            for t in pending:
                t.cancel()

    def cancel(self) -> None:
        for t in list(self.running):
            t.cancel()
