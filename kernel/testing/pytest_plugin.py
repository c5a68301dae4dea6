"""pytest plugin (``pytest11`` entry point): fixtures for sidecars, servers and conformance.

Kept cheap to import: nothing heavy at module level.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def sidecar() -> Iterator[Callable[..., Any]]:
    """Factory: ``sidecar(app_id=..., resources=yaml, config=yaml, args=[...])`` -> running Sidecar."""
    from .sidecar import Sidecar
    started: list[Sidecar] = []

    def make(**kwargs: Any) -> Sidecar:
        sc = Sidecar(**kwargs)
        started.append(sc)
        return sc.start()
    yield make
    for sc in started:
        sc.stop()
