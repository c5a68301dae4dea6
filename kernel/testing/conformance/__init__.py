"""Behavioural suites, one per component kind; a component passes by subclassing its kind's suite."""
from __future__ import annotations

__all__: list[str] = []
