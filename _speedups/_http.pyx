# cython: language_level=3, boundscheck=False, wraparound=False
# cython: annotation_typing=False
"""The HTTP/1.1 connection protocol of the API server: the compiled twin of :mod:`pydapr._http_py`.

The reference is authoritative; this module writes the same bytes and closes
at the same points (``tests/unit/kernel/test_http_parity.py`` feeds both the
same byte streams). httptools (llhttp, already C) stays the parser; what
differs is the work around it:

* the protocol is a final ``cdef class``: state and limits are C fields, the
  parser's, transport's and loop's bound methods are looked up once per
  connection, and the internal steps are C calls;
* each header is decoded into the request's header dict as it arrives (the
  name lower-cased in a C buffer), so the ``Request`` is built with its
  ``headers`` ready instead of raw pairs: the API's security check reads the
  headers of every request, and building them here costs a fraction of the
  lazy path; the dict is the one ``Request.headers`` would have built;
* ``Content-Length`` is parsed in C and the URL split on ``?`` with ``memchr``.

Protocol errors, limits, the dispatch cell and the 413/500 answers come from
:mod:`pydapr._http_common`, shared with the reference.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.string cimport memchr, memcmp

import asyncio
from asyncio import isfuture
from collections import deque
from types import MemberDescriptorType

import httptools

from pydapr._http_common import (MAX_PIPELINED, METHODS, SERVER, body_too_large, error_response,
                                 plain_error, status_line, task_response)
from pydapr.server.request import NO_CONTENT, Request, Response

__all__ = ["HTTPServerProtocol", "render"]

cdef object _ParserError = httptools.HttpParserError
cdef object _ParserUpgrade = httptools.HttpParserUpgrade
cdef object _RequestParser = httptools.HttpRequestParser
cdef object _get_running_loop = asyncio.get_running_loop
cdef object _deque = deque
cdef dict _METHODS = METHODS
cdef bytes _SERVER = SERVER
cdef object _Request = Request
cdef object _Response = Response
cdef object _NO_CONTENT = NO_CONTENT
cdef Py_ssize_t _MAX_PIPELINED = MAX_PIPELINED
cdef Py_ssize_t _SSIZE_MAX = <Py_ssize_t>((<size_t>-1) >> 1)
cdef tuple _KNOWN_METHODS = tuple(METHODS.items())  # (b"GET", "GET"), ...
#: header names most requests carry: one shared ``str`` each (hash computed once, no decode)
cdef tuple _COMMON_HEADERS = tuple((name.encode(), name) for name in (
    "host", "user-agent", "accept", "content-type", "content-length", "connection",
    "accept-encoding", "dapr-api-token", "traceparent", "tracestate", "origin", "authorization",
    "transfer-encoding", "dapr-app-id"))

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyType_GenericAlloc(PyTypeObject* type, Py_ssize_t nitems)

cdef enum:
    _NAME_BUF = 128  # header names up to this length are lower-cased on the C stack
    _SLOTS = 9

#: the slots ``Request.__init__`` fills, in this order; the fast constructor below
#: writes them at their offsets, and only while Request has exactly these slots
#: (any change to Request turns it off and ``Request(...)`` is called instead)
cdef tuple _REQUEST_SLOTS = (
    "method", "path", "query_string", "_headers", "_raw", "body", "params", "peer", "_query")
cdef Py_ssize_t _OFFSETS[_SLOTS]


cdef bint _slot_offsets() except -1:
    if (type(Request) is not type or Request.__bases__ != (object,)
            or tuple(Request.__slots__) != _REQUEST_SLOTS):
        return False
    for i, name in enumerate(_REQUEST_SLOTS):
        descr = Request.__dict__[name]
        if type(descr) is not MemberDescriptorType:
            return False
        _OFFSETS[i] = (<PyMemberDescrObject*>descr).d_member.offset
    return True


cdef bint _FAST_REQUEST = _slot_offsets()


def render(resp, keep_alive=True, head=False):
    """Serialise a response (Content-Length framing)."""
    return _render(resp, keep_alive, head)


cdef bytes _render(object resp, bint keep_alive, bint head):
    status = resp.status
    cdef list parts = [status_line(status), _SERVER]
    content_type = resp.content_type
    if content_type:
        parts.append(b"content-type: " + content_type.encode("latin-1") + b"\r\n")
    headers = resp.headers
    if headers:
        for name, value in headers:
            # refuse header injection from anything that reaches a response header
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                continue
            parts.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    body = resp.body
    if status != 204 and status != 304 and not (100 <= status < 200):
        parts.append(b"content-length: %d\r\n" % len(body))
    else:
        body = b""
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


cdef object _new_request(str method, str path, str query, dict headers, bytes body, object peer):
    """``Request(method, path, query, headers, body, peer)`` without running ``__init__``."""
    if not _FAST_REQUEST:
        return _Request(method, path, query, headers, body, peer, None)
    cdef tuple values = (method, path, query, headers, None, body, {}, peer, None)
    cdef Py_ssize_t i
    req = PyType_GenericAlloc(<PyTypeObject*>_Request, 0)  # slots start NULL: fill every one
    cdef char* base = <char*><PyObject*>req
    for i in range(_SLOTS):
        value = values[i]
        Py_INCREF(value)
        (<PyObject**>(base + _OFFSETS[i]))[0] = <PyObject*>value
    return req


cdef str _method(bytes raw):
    """The method as ``str``: the common ones from :data:`METHODS` without hashing bytes."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef bytes known
    for known, name in _KNOWN_METHODS:
        if PyBytes_GET_SIZE(known) == n and memcmp(PyBytes_AS_STRING(known),
                                                   PyBytes_AS_STRING(raw), n) == 0:
            return name
    return raw.decode("latin-1")


cdef bytes _NO_CONTENT_KEEP_ALIVE = _render(NO_CONTENT, True, False)


cdef str _header_name(bytes name):
    """``name.decode("latin-1").lower()``, lower-casing ASCII in a C buffer."""
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef unsigned char buf[_NAME_BUF]
    cdef unsigned char c
    if n > _NAME_BUF:
        return name.decode("latin-1").lower()
    cdef bytes known
    for i in range(n):
        c = p[i]
        if c >= 0x80:  # not ASCII: str.lower knows Latin-1 case rules
            return name.decode("latin-1").lower()
        buf[i] = c + 32 if 65 <= c <= 90 else c
    for known, text in _COMMON_HEADERS:
        if PyBytes_GET_SIZE(known) == n and memcmp(PyBytes_AS_STRING(known), buf, n) == 0:
            return text
    return PyUnicode_DecodeLatin1(<const char*>buf, n, NULL)


cdef Py_ssize_t _digits(bytes value):
    """``int(value)`` when ``value.isdigit()`` (saturating), else -1."""
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value), out = 0
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef unsigned char c
    if n == 0:
        return -1
    for i in range(n):
        c = p[i]
        if c < 48 or c > 57:
            return -1
        if out > (_SSIZE_MAX - 9) // 10:
            out = _SSIZE_MAX  # larger than any body limit: the answer is 413 either way
        else:
            out = out * 10 + (c - 48)
    return out


@cython.final
@cython.no_gc_clear
cdef class _Pending:
    """The done callback of an async handler's task."""

    cdef HTTPServerProtocol proto
    cdef object req
    cdef bint keep_alive

    def __call__(self, task):
        try:
            self.proto._finished(task, self.req, self.keep_alive)
        finally:
            self.proto._stamp()


@cython.final
cdef class HTTPServerProtocol:
    """One client connection: parse, enforce limits, dispatch, answer in order."""

    cdef object cell, limits, conns, loop, _time, transport, _write_raw, peer, parser
    cdef object _feed, _get_method, _should_keep_alive, queue
    cdef bytes url
    cdef dict headers
    cdef list body
    cdef Py_ssize_t header_bytes, body_len, content_length, max_body, max_header_bytes
    cdef readonly double deadline
    cdef double header_timeout, idle_timeout, body_timeout, due_in
    cdef bint busy, closing, started, paused, due

    def __init__(self, cell, limits, conns):
        self.cell = cell
        self.limits = limits
        self.conns = conns
        self.max_body = limits.max_body
        self.max_header_bytes = limits.max_header_bytes
        self.header_timeout = limits.header_timeout
        self.idle_timeout = limits.idle_timeout
        self.body_timeout = limits.body_timeout
        self.loop = _get_running_loop()
        self._time = self.loop.time
        self.transport = None
        self.parser = _RequestParser(self)
        self._feed = self.parser.feed_data
        self._get_method = self.parser.get_method
        self._should_keep_alive = self.parser.should_keep_alive
        self.url = b""
        self.headers = {}
        self.content_length = -1
        self.started = False
        self.paused = False
        self.header_bytes = 0
        self.body = None
        self.body_len = 0
        self.queue = _deque()
        self.busy = False
        # one sweeper per server checks deadlines (no timer armed per request): 0 = none
        self.deadline = 0.0
        self.due = False  # a deadline ``due_in`` seconds from now, stamped by _stamp()
        self.due_in = 0.0
        self.closing = False
        self.peer = None

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._write_raw = transport.write
        self.peer = transport.get_extra_info("peername")
        self.conns.add(self)
        self._arm(self.idle_timeout)

    def connection_lost(self, exc):
        self.closing = True
        self.conns.discard(self)

    def data_received(self, data):
        if self.closing:
            return
        try:
            self._feed(data)
        except _ParserUpgrade:
            self._fail(400, "protocol upgrade is not supported")
        except _ParserError as exc:
            if not self.closing:
                self._fail(400, f"malformed HTTP request: {exc}")
        finally:
            self._stamp()

    def eof_received(self):
        return None

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    cdef inline void _arm(self, double seconds) except *:
        self.deadline = self._time() + seconds

    cdef inline void _arm_later(self, double seconds) noexcept:
        """Arm when control returns to the loop: the only time the sweeper can look.

        The reference reads the clock at each event; a request parsed and
        answered within one ``data_received`` would read it three times for
        deadlines nobody sees but the last. The stamp is taken at the end of
        ``data_received`` (or of the task callback), microseconds after the
        event, within the loop clock's millisecond resolution.
        """
        self.due = True
        self.due_in = seconds

    cdef inline void _stamp(self) except *:
        if self.due:
            self.due = False
            self.deadline = self._time() + self.due_in

    def check_deadline(self, now):
        """Called by the server's sweeper about once a second."""
        if self.deadline and now > self.deadline:
            self.deadline = 0.0
            self._timed_out()

    cdef _timed_out(self):
        if self.busy or self.closing:
            return
        if self.started:
            self._fail(408, "request not received in time")
        else:
            self.closing = True
            self.transport.close()

    cdef _fail(self, int status, str text):
        """Answer a protocol-level error in plain text and close the connection."""
        if self.closing:
            return
        self.closing = True
        if not self.busy:
            self._write_raw(plain_error(status, text))
        self.transport.close()

    def shutdown(self):
        """Close now if idle, else after the response in progress."""
        if not self.busy and not self.closing:
            self.closing = True
            self.transport.close()
        self.closing = True

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self):
        self.url = b""
        self.headers = {}
        self.content_length = -1
        self.header_bytes = 0
        self.body = None  # most requests have none: the list is made by the first chunk
        self.body_len = 0
        self.started = True
        self._arm_later(self.header_timeout)

    def on_url(self, bytes url not None):
        self.url = url if not self.url else self.url + url
        self.header_bytes += len(url)
        if self.header_bytes > self.max_header_bytes:
            self._fail(414, "request line too long")
            raise _ParserError("too long")

    def on_header(self, bytes name not None, bytes value not None):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(name)
        cdef PyObject* prior
        self.header_bytes += n + PyBytes_GET_SIZE(value) + 4
        if self.header_bytes > self.max_header_bytes:
            self._fail(431, "request headers too large")
            raise _ParserError("too large")
        key = _header_name(name)
        text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL)
        prior = PyDict_GetItem(self.headers, key)
        if prior is NULL:
            PyDict_SetItem(self.headers, key, text)
        else:  # a repeated header: values joined, as Request.headers joins them
            PyDict_SetItem(self.headers, key, f"{<object>prior}, {text}")
        if n == 14 and key == "content-length":
            n = _digits(value)
            if n >= 0:
                self.content_length = n

    def on_headers_complete(self):
        if self.content_length > self.max_body:
            self._reject_large()
            raise _ParserError("too large")
        self._arm_later(self.body_timeout)

    def on_body(self, body):
        self.body_len += len(body)
        if self.body_len > self.max_body:
            self._reject_large()
            raise _ParserError("too large")
        if self.body is None:
            self.body = [body]
        else:
            self.body.append(body)

    cdef _reject_large(self):
        if not self.busy and not self.closing:
            self._write_raw(_render(body_too_large(self.max_body), False, False))
        self.closing = True
        self.transport.close()

    def on_message_complete(self):
        cdef bytes url = self.url
        cdef const char* p = PyBytes_AS_STRING(url)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(url)
        cdef const char* q = <const char*>memchr(p, 63, <size_t>n)  # "?"
        cdef bint keep_alive
        self.deadline = 0.0
        self.due = False
        self.started = False
        if q == NULL:
            path = PyUnicode_DecodeLatin1(p, n, NULL)
            query = ""
        else:
            path = PyUnicode_DecodeLatin1(p, q - p, NULL)
            query = PyUnicode_DecodeLatin1(q + 1, n - (q - p) - 1, NULL)
        method = _method(self._get_method())
        body = self.body
        req = _new_request(method, path, query, self.headers,
                           b"" if body is None else body[0] if len(body) == 1 else b"".join(body),
                           self.peer)
        keep_alive = self._should_keep_alive()
        if self.busy:
            self.queue.append((req, keep_alive))
            if len(self.queue) >= _MAX_PIPELINED and not self.paused:
                self.paused = True  # a client racing ahead: stop reading until we catch up
                self.transport.pause_reading()
            return
        self._handle(req, keep_alive)

    # -- dispatch ---------------------------------------------------------------------------

    cdef _handle(self, req, bint keep_alive):
        cdef _Pending done
        try:
            result = self.cell.fn(req)
        except Exception as exc:  # a bug must not kill the connection loop
            result = error_response(exc, req)
        if type(result) is _Response:
            self._write(result, keep_alive, req.method == "HEAD")
            return
        self.busy = True
        # a future (a broker's confirmation, say) is waited on as it is: no task around it
        task = result if isfuture(result) else self.loop.create_task(result)
        done = _Pending.__new__(_Pending)
        done.proto, done.req, done.keep_alive = self, req, keep_alive
        task.add_done_callback(done)

    cdef _finished(self, task, req, bint keep_alive):
        self.busy = False
        resp = task_response(task, req)
        if resp is None:
            resp = _Response.text(503, "sidecar is shutting down")
            keep_alive = False
        self._write(resp, keep_alive, req.method == "HEAD")
        if self.transport.is_closing():
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        while self.queue and not self.busy and not self.transport.is_closing():
            nreq, nka = self.queue.popleft()
            self._handle(nreq, nka)

    cdef _write(self, resp, bint keep_alive, bint head):
        if self.transport.is_closing():
            return
        keep_alive = keep_alive and not self.closing
        if resp is _NO_CONTENT and keep_alive:
            self._write_raw(_NO_CONTENT_KEEP_ALIVE)  # health checks: no rendering at all
        else:
            self._write_raw(_render(resp, keep_alive, head))
        if not keep_alive:
            self.closing = True
            self.transport.close()
        elif not self.busy:
            self._arm_later(self.idle_timeout)
