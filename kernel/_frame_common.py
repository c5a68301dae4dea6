"""Constants and the error shared by both twins of the proxy frame codec.

The wire format of the sidecar-to-sidecar proxy loop (see :mod:`pydapr.proxy`):
a connection starts with :data:`PREFACE` from the caller, then carries frames
in both directions. Every frame is a 10-byte header, big-endian,
``length:u32 | type:u8 | flags:u8 | stream:u32``, and ``length`` payload bytes.
``stream`` 0 is the connection itself; requests use odd ids chosen by the
caller. Frame payloads are bounded by the receiver's limit, which is checked
on the header before a single payload byte is buffered.

A header block (the payload of a ``HEADERS`` frame) is ``count:u16`` followed by
``count`` pairs ``name_len:u16 | name | value_len:u32 | value``, UTF-8, names
non-empty. Pseudo-headers (``:method``, ``:path``, ``:status``...) carry the
request line and status, in the manner of HTTP/2.

Both :mod:`pydapr._frame_py` and :mod:`pydapr._speedups._frame` import from
here, so they raise the same :class:`FrameError`.
"""
from __future__ import annotations

from .errors import PydaprError

__all__ = [
    "FrameError", "PREFACE", "HEADER_SIZE", "DEFAULT_MAX_FRAME", "MAX_FRAME_LIMIT",
    "MAX_STREAM_ID", "MAX_HEADERS", "MAX_NAME", "MAX_VALUE",
    "DATA", "HEADERS", "RESET", "PING", "GOAWAY", "WINDOW",
    "END_STREAM", "ACK",
]


class FrameError(PydaprError, ValueError):
    """A frame or header block violates the wire format or a size bound; the connection closes."""


#: sent once by the caller when a connection opens (protocol name and version)
PREFACE = b"pydapr-proxy/1\n"
HEADER_SIZE = 10
#: default bound on one frame's payload; body chunks larger than this are split
DEFAULT_MAX_FRAME = 64 * 1024
#: largest bound a decoder may be configured with
MAX_FRAME_LIMIT = 16 * 1024 * 1024
MAX_STREAM_ID = 0x7FFFFFFF
#: pairs in one header block
MAX_HEADERS = 1024
#: bytes of one header name (UTF-8)
MAX_NAME = 0xFFFF
#: bytes of one header value (UTF-8); a header block must also fit in one frame
MAX_VALUE = 1 << 20

# frame types
DATA = 0
HEADERS = 1
RESET = 3
PING = 6
GOAWAY = 7
WINDOW = 8

# flags
END_STREAM = 0x1
ACK = 0x1
