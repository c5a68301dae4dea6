"""The ``bindings`` kind: output bindings run operations, input bindings push events to a handler.

A component may be both (it derives from both classes). Input delivery has
the same at-least-once contract as pub/sub: the component acknowledges an
event to its source only after the handler *returned*; a handler that raises
means "the app did not take it", and the component lets its source deliver
it again where the source can (nack, no PUBACK...).
"""
from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, ClassVar

from . import Component, Feature

__all__ = ["InputBinding", "OutputBinding", "BOTH", "InvokeRequest", "InvokeResponse",
           "BindingEvent", "BindingHandler", "metadata_value"]


@dataclass(slots=True)
class InvokeRequest:
    """One output operation. ``data`` is the raw bytes (JSON text when it came over HTTP)."""

    operation: str
    data: bytes = b""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class InvokeResponse:
    data: bytes = b""
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = ""


@dataclass(slots=True)
class BindingEvent:
    """One event read by an input binding; ``metadata`` reaches the app as headers."""

    data: bytes = b""
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = ""


#: returns the app's reply body (some components use it); raises when the app did not take the event
BindingHandler = Callable[[BindingEvent], Awaitable[bytes]]


def metadata_value(metadata: dict[str, str], name: str, default: str = "") -> str:
    """A request metadata value by case-insensitive name (Dapr's clients vary the case)."""
    if name in metadata:
        return metadata[name]
    low = name.lower()
    return next((v for k, v in metadata.items() if k.lower() == low), default)


#: ``features`` of a component that is both an input and an output binding
BOTH = frozenset({Feature.INPUT_BINDING, Feature.OUTPUT_BINDING})


class OutputBinding(Component):
    """A binding the app invokes."""

    features: ClassVar[frozenset[Feature]] = frozenset({Feature.OUTPUT_BINDING})

    @abc.abstractmethod
    def operations(self) -> list[str]:
        """The operation names :meth:`invoke` accepts (``create``, ``get``...)."""

    @abc.abstractmethod
    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        """Run one operation; None when there is nothing to answer (HTTP 204)."""


class InputBinding(Component):
    """A binding that delivers events to the app (a class that is both sets both features)."""

    features: ClassVar[frozenset[Feature]] = frozenset({Feature.INPUT_BINDING})

    @abc.abstractmethod
    async def read(self, handler: BindingHandler) -> None:
        """Start delivering events to ``handler`` and return once reading has begun.

        The component owns the tasks it starts and stops them in :meth:`close`.
        """

    @staticmethod
    async def stop_tasks(tasks: list[asyncio.Task]) -> None:
        """Cancel and await ``tasks`` (a helper for :meth:`close`)."""
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        tasks.clear()
