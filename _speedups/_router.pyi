"""Stub for the compiled twin of :mod:`pydapr._router_py` (same public API)."""
from typing import Any

__all__ = ["Router"]

class Router:
    """Maps (method, path) to a value and its path parameters."""

    def __init__(self) -> None: ...
    def add(self, methods: tuple[str, ...] | list[str], pattern: str, value: Any) -> None: ...
    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None: ...
