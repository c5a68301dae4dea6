"""Random identifiers for hot paths: event ids (UUID version 4), W3C trace and span ids.

The randomness is the OS's CSPRNG (``os.urandom``), drawn a pool at a time:
one system call per 256 ids instead of one per id. On a publish, the two
``getrandom`` calls were the costliest steps of a request that wakes an idle
sidecar (about 5 µs each). The pool is a list iterator of 128-bit chunks:
``next()`` on it is one C call under the GIL, so threads never get the same
chunk, with no lock. A forked child drops the pool it inherited, so a parent
and its child never hand out the same ids. These are identifiers, not
secrets: nothing here is key material.
"""
from __future__ import annotations

import os
from typing import Iterator

__all__ = ["new_uuid", "new_trace_id", "new_span_id"]

_POOL_BYTES = 4096
_chunks: Iterator[str] = iter(())  # unused 32-hex-digit chunks of the current pool

#: a UUID's variant nibble (RFC 9562, 10xx) from any hex digit, keeping its two low bits
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_ZERO = "0" * 32


def _chunk() -> str:
    """32 random lower-case hex digits, each handed out once."""
    global _chunks
    try:
        return next(_chunks)
    except StopIteration:
        h = os.urandom(_POOL_BYTES).hex()
        _chunks = pool = iter([h[i:i + 32] for i in range(0, len(h), 32)])
        return next(pool)


def new_uuid() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` gives."""
    h = _chunk()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_trace_id() -> str:
    """32 hex digits, never all zero (W3C Trace Context: an all-zero trace id is invalid)."""
    t = _chunk()
    while t == _ZERO:
        t = _chunk()
    return t


def new_span_id() -> str:
    """16 hex digits, never all zero (an all-zero parent id is invalid)."""
    s = _chunk()[:16]
    while s == "0000000000000000":
        s = _chunk()[:16]
    return s


def _forget_pool() -> None:
    global _chunks
    _chunks = iter(())


os.register_at_fork(after_in_child=_forget_pool)
