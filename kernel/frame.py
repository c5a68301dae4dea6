"""Selector for the proxy frame codec: the Cython twin when built, else the reference."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import NO_EXTENSIONS

__all__ = ["encode_frame", "encode_data", "encode_headers", "decode_headers", "FrameDecoder",
           "IMPLEMENTATION"]

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._frame_py import FrameDecoder, decode_headers, encode_data, encode_frame, encode_headers
    IMPLEMENTATION = "python"
else:
    try:
        from ._speedups._frame import (FrameDecoder, decode_headers, encode_data, encode_frame,
                                       encode_headers)
        IMPLEMENTATION = "cython"
    except ImportError:  # not built: the reference serves, at lower speed
        from ._frame_py import FrameDecoder, decode_headers, encode_data, encode_frame, encode_headers
        IMPLEMENTATION = "python"
