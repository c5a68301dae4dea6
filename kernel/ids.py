"""Random identifiers for hot paths: event ids (UUID version 4), W3C trace and span ids.

The randomness is the OS's CSPRNG (``os.urandom``), drawn a pool at a time:
one system call per 256 ids instead of one per id. On a publish, the two
``getrandom`` calls were the costliest steps of a request that wakes an idle
sidecar (about 5 µs each). A pool is a list iterator of finished strings
(random hex chunks, UUIDs, traceparents), formatted in one list comprehension
per refill so a request only calls ``next()``: one C call under the GIL, so
threads never get the same string, with no lock. A forked child drops the
pools it inherited, so a parent and its child never hand out the same ids.
These are identifiers, not secrets: nothing here is key material.
"""
from __future__ import annotations

import os
from typing import Iterator

__all__ = ["new_uuid", "new_trace_id", "new_span_id", "new_traceparent"]

_POOL_BYTES = 4096
_chunks: Iterator[str] = iter(())  # unused 32-hex-digit chunks of the current pool
_uuids: Iterator[str] = iter(())
_traceparents: Iterator[str] = iter(())

#: a UUID's variant nibble (RFC 9562, 10xx) from any hex digit, keeping its two low bits
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_ZERO = "0" * 32
_ZERO16 = "0" * 16


def _random_hex(width: int) -> list[str]:
    """One pool's worth of random lower-case hex strings of ``width`` digits."""
    h = os.urandom(_POOL_BYTES).hex()
    return [h[i:i + width] for i in range(0, len(h) - width + 1, width)]


def _chunk() -> str:
    """32 random lower-case hex digits, each handed out once."""
    global _chunks
    try:
        return next(_chunks)
    except StopIteration:
        _chunks = pool = iter(_random_hex(32))
        return next(pool)


def new_uuid() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` gives."""
    global _uuids
    try:
        return next(_uuids)
    except StopIteration:
        _uuids = pool = iter([f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
                              for h in _random_hex(32)])
        return next(pool)


def new_traceparent() -> str:
    """A W3C traceparent that starts a sampled trace: ``00-<trace id>-<span id>-01``.

    Neither id is ever all zero (both would be invalid).
    """
    global _traceparents
    while True:
        try:
            return next(_traceparents)
        except StopIteration:
            _traceparents = iter([f"00-{h[:32]}-{h[32:]}-01" for h in _random_hex(48)
                                  if h[:32] != _ZERO and h[32:] != _ZERO16])


def new_trace_id() -> str:
    """32 hex digits, never all zero (W3C Trace Context: an all-zero trace id is invalid)."""
    t = _chunk()
    while t == _ZERO:
        t = _chunk()
    return t


def new_span_id() -> str:
    """16 hex digits, never all zero (an all-zero parent id is invalid)."""
    s = _chunk()[:16]
    while s == _ZERO16:
        s = _chunk()[:16]
    return s


def _forget_pool() -> None:
    global _chunks, _uuids, _traceparents
    _chunks = _uuids = _traceparents = iter(())


os.register_at_fork(after_in_child=_forget_pool)
