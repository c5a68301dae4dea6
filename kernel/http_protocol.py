"""Selector for the HTTP connection protocol: the Cython twin when built, else the reference."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import NO_EXTENSIONS

__all__ = ["HTTPServerProtocol", "render", "IMPLEMENTATION"]

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._http_py import HTTPServerProtocol, render
    IMPLEMENTATION = "python"
else:
    try:
        from ._speedups._http import HTTPServerProtocol, render
        IMPLEMENTATION = "cython"
    except ImportError:  # not built: the reference serves, at lower speed
        from ._http_py import HTTPServerProtocol, render
        IMPLEMENTATION = "python"
