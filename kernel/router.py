"""Selector for the route matcher: the Cython twin when built, else the reference."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import NO_EXTENSIONS

__all__ = ["Router", "IMPLEMENTATION"]

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._router_py import Router
    IMPLEMENTATION = "python"
else:
    try:
        from ._speedups._router import Router
        IMPLEMENTATION = "cython"
    except ImportError:  # not built: the reference serves, at lower speed
        from ._router_py import Router
        IMPLEMENTATION = "python"
