# cython: language_level=3, boundscheck=False, wraparound=False
# cython: annotation_typing=False
"""The proxy frame codec: the compiled twin of :mod:`pydapr._frame_py`.

The reference is authoritative; this module reproduces its results and
exceptions (``tests/unit/proxy/test_proxy_frame.py`` runs both and compares
them with Hypothesis). Only the byte work differs: headers are packed and
read with pointer arithmetic into preallocated ``bytes``, and the decoder
parses straight out of the incoming chunk when nothing is pending, copying
only the tail of an incomplete frame.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from pydapr._frame_common import (DATA, END_STREAM, HEADER_SIZE, MAX_FRAME_LIMIT, MAX_HEADERS,
                                  MAX_NAME, MAX_STREAM_ID, MAX_VALUE, DEFAULT_MAX_FRAME, FrameError)

__all__ = ["encode_frame", "encode_data", "encode_headers", "decode_headers", "FrameDecoder"]

cdef Py_ssize_t _HEADER = 10
cdef unsigned long long _LIMIT = MAX_FRAME_LIMIT
cdef unsigned long long _MAX_STREAM = MAX_STREAM_ID
cdef Py_ssize_t _MAX_HEADERS = MAX_HEADERS
cdef Py_ssize_t _MAX_NAME = MAX_NAME
cdef Py_ssize_t _MAX_VALUE = MAX_VALUE


cdef inline unsigned int _get32(const unsigned char* p) noexcept nogil:
    return ((<unsigned int>p[0]) << 24) | ((<unsigned int>p[1]) << 16) | \
           ((<unsigned int>p[2]) << 8) | (<unsigned int>p[3])


cdef inline unsigned int _get16(const unsigned char* p) noexcept nogil:
    return ((<unsigned int>p[0]) << 8) | (<unsigned int>p[1])


cdef inline void _put32(unsigned char* p, unsigned long long v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline void _put16(unsigned char* p, unsigned long v) noexcept nogil:
    p[0] = (v >> 8) & 0xFF
    p[1] = v & 0xFF


cdef inline bytes _payload(object data):
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"frame payload must be bytes-like, not {type(data).__name__}")


cdef bytes _frame(int ftype, int flags, unsigned long long stream_id, const unsigned char* data,
                  Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _HEADER + n)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    _put32(p, <unsigned long long>n)
    p[4] = ftype
    p[5] = flags
    _put32(p + 6, stream_id)
    if n:
        memcpy(p + _HEADER, data, n)
    return out


def encode_frame(ftype, flags, stream_id, payload=b""):
    """One frame: header and payload (see the reference for the contract)."""
    cdef bytes data = _payload(payload)
    if not 0 <= ftype <= 0xFF or not 0 <= flags <= 0xFF:
        raise FrameError(f"frame type {ftype} or flags {flags} out of range")
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise FrameError(f"stream id {stream_id} out of range")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if <unsigned long long>n > _LIMIT:
        raise FrameError(f"frame payload of {n} bytes exceeds {MAX_FRAME_LIMIT}")
    return _frame(ftype, flags, stream_id, <const unsigned char*>PyBytes_AS_STRING(data), n)


def encode_data(stream_id, data, end_stream, max_frame_size=DEFAULT_MAX_FRAME):
    """``data`` as DATA frames of at most ``max_frame_size`` bytes each."""
    cdef bytes body = _payload(data)
    if not 0 < max_frame_size <= MAX_FRAME_LIMIT:
        raise FrameError(f"max frame size {max_frame_size} out of range")
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise FrameError(f"stream id {stream_id} out of range")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body), step = max_frame_size, start = 0, size
    cdef Py_ssize_t frames, total
    cdef bint end = bool(end_stream)
    cdef unsigned long long sid = stream_id
    cdef const unsigned char* src = <const unsigned char*>PyBytes_AS_STRING(body)
    if n == 0:
        return _frame(DATA, END_STREAM, sid, src, 0) if end else b""
    frames = (n + step - 1) // step
    total = n + frames * _HEADER
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    while start < n:
        size = n - start if n - start < step else step
        _put32(p, <unsigned long long>size)
        p[4] = DATA
        p[5] = END_STREAM if (end and start + size >= n) else 0
        _put32(p + 6, sid)
        memcpy(p + _HEADER, src + start, size)
        p += _HEADER + size
        start += size
    return out


cdef inline bytes _utf8(object text, str what):
    if not isinstance(text, str):
        raise TypeError(f"header {what} must be str, not {type(text).__name__}")
    try:
        return (<str>text).encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError(f"header {what} is not encodable as UTF-8") from None


def encode_headers(pairs):
    """A header block from ``(name, value)`` pairs (see the reference)."""
    cdef list parts = []
    cdef Py_ssize_t count = 0, total = 2, nlen, vlen
    cdef bytes n, v
    for name, value in pairs:
        n = _utf8(name, "name")
        v = _utf8(value, "value")
        nlen = PyBytes_GET_SIZE(n)
        vlen = PyBytes_GET_SIZE(v)
        if nlen == 0 or nlen > _MAX_NAME:
            raise FrameError(f"header name of {nlen} bytes is empty or too long")
        if vlen > _MAX_VALUE:
            raise FrameError(f"header value of {vlen} bytes exceeds {MAX_VALUE}")
        count += 1
        if count > _MAX_HEADERS:
            raise FrameError(f"more than {MAX_HEADERS} headers")
        parts.append(n)
        parts.append(v)
        total += 6 + nlen + vlen
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    _put16(p, count)
    p += 2
    for i in range(0, 2 * count, 2):
        n = <bytes>parts[i]
        v = <bytes>parts[i + 1]
        nlen = PyBytes_GET_SIZE(n)
        vlen = PyBytes_GET_SIZE(v)
        _put16(p, nlen)
        memcpy(p + 2, PyBytes_AS_STRING(n), nlen)
        p += 2 + nlen
        _put32(p, <unsigned long long>vlen)
        memcpy(p + 4, PyBytes_AS_STRING(v), vlen)
        p += 4 + vlen
    return out


def decode_headers(payload):
    """The ``(name, value)`` pairs of a header block (see the reference)."""
    cdef bytes data = _payload(payload)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data), pos = 2, nlen, vlen, i, count, name_at
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef list pairs = []
    if size < 2:
        raise FrameError("header block shorter than its count")
    count = _get16(p)
    if count > _MAX_HEADERS:
        raise FrameError(f"header block announces {count} pairs (limit {MAX_HEADERS})")
    for i in range(count):
        if pos + 2 > size:
            raise FrameError("header block truncated in a name length")
        nlen = _get16(p + pos)
        pos += 2
        if nlen == 0:
            raise FrameError("empty header name")
        if pos + nlen + 4 > size:
            raise FrameError("header block truncated in a name")
        name_at = pos
        pos += nlen
        vlen = _get32(p + pos)
        pos += 4
        if vlen > _MAX_VALUE or pos + vlen > size:
            raise FrameError("header block truncated in a value")
        try:
            pairs.append(((<const char*>p + name_at)[:nlen].decode("utf-8"),
                          (<const char*>p + pos)[:vlen].decode("utf-8")))
        except UnicodeDecodeError:
            raise FrameError("header text is not UTF-8") from None
        pos += vlen
    if pos != size:
        raise FrameError(f"{size - pos} bytes after the last header")
    return pairs


cdef class FrameDecoder:
    """Splits a byte stream into frames, buffering at most one partial frame."""

    cdef readonly Py_ssize_t max_frame_size
    cdef bytes _buf

    def __init__(self, max_frame_size=DEFAULT_MAX_FRAME):
        if not 0 < max_frame_size <= MAX_FRAME_LIMIT:
            raise FrameError(f"max frame size {max_frame_size} out of range")
        self.max_frame_size = max_frame_size
        self._buf = b""

    @property
    def buffered(self):
        """Bytes held back as the start of an incomplete frame."""
        return PyBytes_GET_SIZE(self._buf)

    def feed(self, data):
        """Add bytes; return the frames they complete (see the reference)."""
        cdef bytes chunk = _payload(data)
        cdef bytes buf
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + chunk
        else:
            buf = chunk
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(buf), pos = 0, end
        cdef unsigned int length, stream_id
        cdef list frames = []
        while n - pos >= _HEADER:
            length = _get32(p + pos)
            if length > <unsigned int>self.max_frame_size:
                raise FrameError(f"frame of {length} bytes exceeds the limit of "
                                 f"{self.max_frame_size}")
            stream_id = _get32(p + pos + 6)
            if stream_id > <unsigned int>_MAX_STREAM:
                raise FrameError("stream id has the reserved bit set")
            end = pos + _HEADER + length
            if end > n:
                break
            frames.append((p[pos + 4], p[pos + 5], stream_id,
                           PyBytes_FromStringAndSize(<const char*>p + pos + _HEADER, length)))
            pos = end
        if pos == n:
            self._buf = b""
        elif pos:
            self._buf = PyBytes_FromStringAndSize(<const char*>p + pos, n - pos)
        else:
            self._buf = buf
        return frames
