"""The ``configuration``  kind. The interface is defined with its building block."""
from __future__ import annotations

__all__: list[str] = []
