"""The proxy frame codec: the reference twin of ``pydapr._speedups._frame``.

Readable and authoritative; the compiled twin reproduces its results and
exceptions exactly (tests run both, plus a Hypothesis differential test). The
wire format is described in :mod:`pydapr._frame_common`.

Every length read from the wire is checked against a bound before anything
is buffered or allocated: a frame header announcing more than the decoder's
``max_frame_size`` raises :class:`FrameError` at once, and a header block is
checked pair by pair against the bytes actually present.
"""
from __future__ import annotations

import struct
from typing import Iterable

from ._frame_common import (DATA, END_STREAM, HEADER_SIZE, MAX_FRAME_LIMIT, MAX_HEADERS, MAX_NAME,
                            MAX_STREAM_ID, MAX_VALUE, DEFAULT_MAX_FRAME, FrameError)

__all__ = ["encode_frame", "encode_data", "encode_headers", "decode_headers", "FrameDecoder"]

_HEAD = struct.Struct("!IBBI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

Frame = tuple[int, int, int, bytes]  # (type, flags, stream id, payload)


def _payload(data: object) -> bytes:
    if type(data) is bytes:
        return data  # type: ignore[return-value]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"frame payload must be bytes-like, not {type(data).__name__}")


def encode_frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: header and payload.

    :raises FrameError: when a field is out of range or the payload exceeds
        :data:`~pydapr._frame_common.MAX_FRAME_LIMIT`.
    """
    payload = _payload(payload)
    if not 0 <= ftype <= 0xFF or not 0 <= flags <= 0xFF:
        raise FrameError(f"frame type {ftype} or flags {flags} out of range")
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise FrameError(f"stream id {stream_id} out of range")
    if len(payload) > MAX_FRAME_LIMIT:
        raise FrameError(f"frame payload of {len(payload)} bytes exceeds {MAX_FRAME_LIMIT}")
    return _HEAD.pack(len(payload), ftype, flags, stream_id) + payload


def encode_data(stream_id: int, data: bytes, end_stream: bool, max_frame_size: int = DEFAULT_MAX_FRAME
                ) -> bytes:
    """``data`` as DATA frames of at most ``max_frame_size`` bytes each.

    The last frame carries END_STREAM when ``end_stream``; empty data yields one
    empty END_STREAM frame, or nothing.
    """
    data = _payload(data)
    if not 0 < max_frame_size <= MAX_FRAME_LIMIT:
        raise FrameError(f"max frame size {max_frame_size} out of range")
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise FrameError(f"stream id {stream_id} out of range")
    n = len(data)
    if n == 0:
        return encode_frame(DATA, END_STREAM, stream_id) if end_stream else b""
    out = []
    for start in range(0, n, max_frame_size):
        chunk = data[start:start + max_frame_size]
        last = start + max_frame_size >= n
        out.append(encode_frame(DATA, END_STREAM if (last and end_stream) else 0, stream_id, chunk))
    return b"".join(out)


def _utf8(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"header {what} must be str, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError(f"header {what} is not encodable as UTF-8") from None


def encode_headers(pairs: Iterable[tuple[str, str]]) -> bytes:
    """A header block from ``(name, value)`` pairs (order and repeats preserved).

    :raises FrameError: on an empty or oversized name, an oversized value or too many pairs.
    """
    out = [b""]
    count = 0
    for name, value in pairs:
        n = _utf8(name, "name")
        v = _utf8(value, "value")
        if not n or len(n) > MAX_NAME:
            raise FrameError(f"header name of {len(n)} bytes is empty or too long")
        if len(v) > MAX_VALUE:
            raise FrameError(f"header value of {len(v)} bytes exceeds {MAX_VALUE}")
        count += 1
        if count > MAX_HEADERS:
            raise FrameError(f"more than {MAX_HEADERS} headers")
        out.append(_U16.pack(len(n)))
        out.append(n)
        out.append(_U32.pack(len(v)))
        out.append(v)
    out[0] = _U16.pack(count)
    return b"".join(out)


def decode_headers(payload: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a header block.

    :raises FrameError: when a length points past the end, bytes are left over,
        a name is empty, text is not UTF-8 or a bound is exceeded.
    """
    data = _payload(payload)
    size = len(data)
    if size < 2:
        raise FrameError("header block shorter than its count")
    (count,) = _U16.unpack_from(data, 0)
    if count > MAX_HEADERS:
        raise FrameError(f"header block announces {count} pairs (limit {MAX_HEADERS})")
    pos = 2
    pairs: list[tuple[str, str]] = []
    for _ in range(count):
        if pos + 2 > size:
            raise FrameError("header block truncated in a name length")
        (nlen,) = _U16.unpack_from(data, pos)
        pos += 2
        if nlen == 0:
            raise FrameError("empty header name")
        if pos + nlen + 4 > size:
            raise FrameError("header block truncated in a name")
        name = data[pos:pos + nlen]
        pos += nlen
        (vlen,) = _U32.unpack_from(data, pos)
        pos += 4
        if vlen > MAX_VALUE or pos + vlen > size:
            raise FrameError("header block truncated in a value")
        value = data[pos:pos + vlen]
        pos += vlen
        try:
            pairs.append((name.decode("utf-8"), value.decode("utf-8")))
        except UnicodeDecodeError:
            raise FrameError("header text is not UTF-8") from None
    if pos != size:
        raise FrameError(f"{size - pos} bytes after the last header")
    return pairs


class FrameDecoder:
    """Splits a byte stream into frames, buffering at most one partial frame.

    :param max_frame_size: the largest payload accepted; a header announcing more
        raises :class:`FrameError` before the payload is read.
    """

    __slots__ = ("max_frame_size", "_buf")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        if not 0 < max_frame_size <= MAX_FRAME_LIMIT:
            raise FrameError(f"max frame size {max_frame_size} out of range")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held back as the start of an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete, as ``(type, flags, stream, payload)``.

        :raises FrameError: on a payload length over the bound or a stream id with the
            reserved high bit set. The decoder is unusable afterwards.
        """
        buf = self._buf
        buf += _payload(data)
        frames: list[Frame] = []
        pos, n = 0, len(buf)
        while n - pos >= HEADER_SIZE:
            length, ftype, flags, stream_id = _HEAD.unpack_from(buf, pos)
            if length > self.max_frame_size:
                raise FrameError(f"frame of {length} bytes exceeds the limit of "
                                 f"{self.max_frame_size}")
            if stream_id > MAX_STREAM_ID:
                raise FrameError("stream id has the reserved bit set")
            end = pos + HEADER_SIZE + length
            if end > n:
                break
            frames.append((ftype, flags, stream_id, bytes(buf[pos + HEADER_SIZE:end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames
