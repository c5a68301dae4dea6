# cython: language_level=3, boundscheck=False, wraparound=False
# cython: annotation_typing=False
# (annotations are documentation only, as in the reference: typing them would make
# Cython reject a None path with a different exception than the reference raises)
"""HTTP route matching: the compiled twin of :mod:`pydapr._router_py`.

The reference is authoritative; this module reproduces its results and
exceptions exactly (``tests/unit/kernel/test_router_parity.py`` checks it
differentially). Only the hot loop differs:

* the path is scanned in place (no ``split``), with ``memchr`` for ``/``;
* literal children are compared with ``memcmp`` (a dict keyed by a fresh
  substring only past ``_LINEAR_MAX`` siblings);
* the walk is a C-level recursive ``cdef`` function (depth = trie depth) that
  pushes parameter offsets on a C stack; substrings are cut and percent-decoded
  only for the route that wins.

``add`` runs at boot, so it stays plain Python, line for line the reference.
"""
cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr, memcmp

from urllib.parse import unquote

from pydapr.errors import MalformedPath

__all__ = ["Router"]


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    unsigned int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_UCS4 PyUnicode_READ(int kind, const void* data, Py_ssize_t index) noexcept nogil
    object PyUnicode_Substring(object o, Py_ssize_t start, Py_ssize_t end)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)


cdef enum:
    _STACK = 32        # parameter slots on the C stack before falling back to the heap
    _LINEAR_MAX = 32   # literal siblings scanned with memcmp; more go through the dict
    _DECODE_BUF = 256  # percent-decode buffer on the C stack
    _SLASH = 47        # ord("/")
    _PERCENT = 37      # ord("%")


cdef class _Node:
    cdef dict literal  # segment -> _Node (add() semantics; lookup when many siblings)
    cdef list keys     # the same keys and children, in insertion order, for memcmp scans
    cdef list kids
    cdef _Node param
    cdef dict rest     # None, or catch-all leaf: method -> (value, names)
    cdef dict leaf     # method -> (value, names)

    def __cinit__(self):
        self.literal = {}
        self.keys = []
        self.kids = []
        self.param = None
        self.rest = None
        self.leaf = {}


cdef struct _Scan:
    const char* data
    int kind
    Py_ssize_t n
    Py_ssize_t* starts  # parameter segments matched so far: path[starts[i]:ends[i]]
    Py_ssize_t* ends
    Py_ssize_t top
    Py_ssize_t raw      # start of the catch-all remainder, or -1


cdef inline Py_ssize_t _skip_slashes(const _Scan* s, Py_ssize_t pos) noexcept nogil:
    if s.kind == 1:
        while pos < s.n and s.data[pos] == _SLASH:
            pos += 1
    else:
        while pos < s.n and PyUnicode_READ(s.kind, s.data, pos) == _SLASH:
            pos += 1
    return pos


cdef inline Py_ssize_t _segment_end(const _Scan* s, Py_ssize_t pos) noexcept nogil:
    cdef const char* hit
    if s.kind == 1:
        hit = <const char*>memchr(s.data + pos, _SLASH, <size_t>(s.n - pos))
        return s.n if hit == NULL else hit - s.data
    while pos < s.n and PyUnicode_READ(s.kind, s.data, pos) != _SLASH:
        pos += 1
    return pos


cdef inline bint _equals(str key, const _Scan* s, Py_ssize_t start, Py_ssize_t size):
    """``key == path[start:start + size]``; the caller has checked the length."""
    cdef int kind = PyUnicode_KIND(key)
    cdef const void* data = PyUnicode_DATA(key)
    cdef Py_ssize_t i
    if kind == s.kind:
        return memcmp(data, s.data + start * kind, <size_t>(size * kind)) == 0
    for i in range(size):  # different widths can still hold equal code points
        if PyUnicode_READ(kind, data, i) != PyUnicode_READ(s.kind, s.data, start + i):
            return False
    return True


cdef inline _Node _literal(_Node node, const _Scan* s, Py_ssize_t start, Py_ssize_t end, str path):
    cdef list keys = node.keys
    cdef Py_ssize_t i, count = len(keys), size = end - start
    cdef str key
    if count == 0:
        return None
    if count > _LINEAR_MAX:
        return node.literal.get(PyUnicode_Substring(path, start, end))
    for i in range(count):
        key = <str>keys[i]
        if PyUnicode_GET_LENGTH(key) == size and _equals(key, s, start, size):
            return <_Node>node.kids[i]
    return None


cdef inline object _verb(dict table, object method):
    hit = table.get(method)
    if hit is None:
        hit = table.get("*")
    return hit


cdef object _walk(_Node node, _Scan* s, Py_ssize_t pos, object method, str path):
    """The reference's ``_walk``: literal, then parameter, then catch-all, backtracking."""
    cdef Py_ssize_t end
    cdef _Node child
    pos = _skip_slashes(s, pos)
    if pos == s.n:
        hit = _verb(node.leaf, method)
        if hit is not None:
            return hit
        if node.rest is not None:
            hit = _verb(node.rest, method)
            if hit is not None:
                s.raw = pos  # empty remainder
                return hit
        return None
    end = _segment_end(s, pos)
    child = _literal(node, s, pos, end, path)
    if child is not None:
        hit = _walk(child, s, end, method, path)
        if hit is not None:
            return hit
    if node.param is not None:
        s.starts[s.top] = pos
        s.ends[s.top] = end
        s.top += 1
        hit = _walk(node.param, s, end, method, path)
        if hit is not None:
            return hit
        s.top -= 1
    if node.rest is not None:
        hit = _verb(node.rest, method)
        if hit is not None:
            s.raw = pos  # "/".join(parts[i:]) is exactly path[pos:]
            return hit
    return None


cdef inline int _hex(Py_UCS4 c) noexcept nogil:
    if 48 <= c <= 57:    # 0-9
        return <int>c - 48
    if 65 <= c <= 70:    # A-F
        return <int>c - 55
    if 97 <= c <= 102:   # a-f
        return <int>c - 87
    return -1


cdef object _decode(str segment):
    """The reference's ``_decode``: MalformedPath on a bad escape, strict UTF-8."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(segment), j, m = 0
    cdef int kind = PyUnicode_KIND(segment)
    cdef const void* data = PyUnicode_DATA(segment)
    cdef Py_UCS4 c
    cdef bint escaped = False
    cdef char stack_buf[_DECODE_BUF]
    cdef char* buf
    for j in range(n):
        if PyUnicode_READ(kind, data, j) == _PERCENT:
            escaped = True
            if (j + 2 >= n or _hex(PyUnicode_READ(kind, data, j + 1)) < 0
                    or _hex(PyUnicode_READ(kind, data, j + 2)) < 0):
                raise MalformedPath(f"invalid percent-escape in path segment {segment!r}")
    if not escaped:
        return segment
    if not PyUnicode_IS_ASCII(segment):
        try:
            return unquote(segment, errors="strict")  # rare: the reference's exact algorithm
        except UnicodeDecodeError:
            raise MalformedPath(f"path segment {segment!r} does not decode to UTF-8") from None
    buf = &stack_buf[0]
    if n > _DECODE_BUF:
        buf = <char*>PyMem_Malloc(<size_t>n)
        if buf == NULL:
            raise MemoryError()
    try:
        j = 0
        while j < n:
            c = PyUnicode_READ(kind, data, j)
            if c == _PERCENT:
                buf[m] = <char>(_hex(PyUnicode_READ(kind, data, j + 1)) * 16
                                + _hex(PyUnicode_READ(kind, data, j + 2)))
                j += 3
            else:
                buf[m] = <char>c
                j += 1
            m += 1
        try:
            return PyUnicode_DecodeUTF8(buf, m, "strict")
        except UnicodeDecodeError:
            raise MalformedPath(f"path segment {segment!r} does not decode to UTF-8") from None
    finally:
        if buf != &stack_buf[0]:
            PyMem_Free(buf)


cdef class Router:
    """Maps (method, path) to a value and its path parameters."""

    cdef _Node _root
    cdef Py_ssize_t _depth  # most segments in any pattern: bounds the parameter stack
    cdef object __weakref__

    def __init__(self) -> None:
        self._root = _Node()
        self._depth = 0

    @cython.wraparound(True)  # seg[1:-2], as in the reference
    def add(self, methods: tuple[str, ...] | list[str], pattern: str, value: Any) -> None:
        """Register ``value`` for ``pattern`` and each verb in ``methods`` (``"*"`` = any verb).

        :raises ValueError: on a malformed pattern or a route already registered.
        """
        cdef _Node node = self._root
        cdef _Node child
        names = []
        segments = [s for s in pattern.split("/") if s]
        if len(segments) > self._depth:  # before any node exists, even if we raise below
            self._depth = len(segments)
        for i, seg in enumerate(segments):
            if seg.startswith("{") and seg.endswith("*}"):
                if i != len(segments) - 1:
                    raise ValueError(f"catch-all must be the last segment: {pattern!r}")
                names.append(seg[1:-2])
                if node.rest is None:
                    node.rest = {}
                _put(node.rest, methods, value, tuple(names), pattern)
                return
            if seg.startswith("{") and seg.endswith("}"):
                names.append(seg[1:-1])
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                child = node.literal.get(seg)
                if child is None:
                    child = _Node()
                    node.literal[seg] = child
                    node.keys.append(seg)
                    node.kids.append(child)
                node = child
        _put(node.leaf, methods, value, tuple(names), pattern)

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
        """Return ``(value, params)`` or ``None``.

        :raises MalformedPath: when a matched parameter has a bad percent-escape.
        """
        cdef _Scan s
        cdef Py_ssize_t stack[2 * _STACK]
        cdef Py_ssize_t* slots = &stack[0]
        cdef Py_ssize_t i, count
        cdef tuple names
        cdef dict params
        if not isinstance(path, str):
            path.split("/")  # the reference's error for a non-str path
            raise TypeError(f"path must be str, not {type(path).__name__}")
        if self._depth > _STACK:
            slots = <Py_ssize_t*>PyMem_Malloc(2 * self._depth * sizeof(Py_ssize_t))
            if slots == NULL:
                raise MemoryError()
        try:
            s.data = <const char*>PyUnicode_DATA(path)
            s.kind = PyUnicode_KIND(path)
            s.n = PyUnicode_GET_LENGTH(path)
            s.starts = slots
            s.ends = slots + (_STACK if slots == &stack[0] else self._depth)
            s.top = 0
            s.raw = -1
            found = _walk(self._root, &s, 0, method, <str>path)
            if found is None:
                return None
            value, names = found
            count = len(names)
            if count > s.top + (s.raw >= 0):  # zip() stops at the shorter side
                count = s.top + (s.raw >= 0)
            params = {}
            for i in range(count):
                if i < s.top:
                    params[names[i]] = _decode(PyUnicode_Substring(path, s.starts[i], s.ends[i]))
                else:
                    params[names[i]] = PyUnicode_Substring(path, s.raw, s.n)
            return value, params
        finally:
            if slots != &stack[0]:
                PyMem_Free(slots)


cdef _put(dict table, methods, value, tuple names, pattern):
    for m in methods:
        if m in table:
            raise ValueError(f"route {m} {pattern} is registered twice")
        table[m] = (value, names)
