"""Canonical invocation methods (security spec 1.4): canonicalise once, at the edge.

The one invariant behind the worst service-invocation bugs: the string the
access-control policy evaluates is byte for byte the string dispatched to the
app, and the app cannot decode it into anything else. So:

1. the HTTP edge percent-decodes the raw method exactly once
   (:func:`decode_method`; gRPC method names are never decoded);
2. :func:`canonicalise` rejects what cannot be made safe (``#``, ``?``, NUL,
   control characters: 400 ``ERR_MALFORMED_REQUEST``) and resolves ``.``,
   ``..`` and empty segments, POSIX style, never climbing above the root;
3. the policy evaluates that string;
4. :func:`dispatch_path` percent-encodes every segment again, so a literal
   ``%`` (``neworde%2572`` arrives as ``neworde%72``) reaches the app as
   ``%25`` and decodes back to exactly the evaluated string.

The callee's sidecar receives the canonical string from the caller's sidecar
and only checks it (:func:`is_canonical`): it never normalises a second time.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from pydapr.errors import APIError

__all__ = ["decode_method", "canonicalise", "canonical_http_method", "dispatch_path",
           "is_canonical", "FORBIDDEN"]

#: characters a method may never contain, even percent-encoded
FORBIDDEN = re.compile(r"[#?\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: characters left unescaped in a dispatched path segment (RFC 3986 pchar minus
#: the ones some app servers treat specially: ``;`` path parameters, ``+`` as space)
_SAFE = "-._~!$&'()*,=:@"


def _malformed(why: str) -> APIError:
    return APIError("ERR_MALFORMED_REQUEST", f"invalid method: {why}")


def decode_method(raw: str) -> str:
    """Percent-decode a method taken from a URL path, once (RFC 3986: ``+`` stays ``+``).

    :raises APIError: 400 on a malformed escape or bytes that are not UTF-8.
    """
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw):
        raise _malformed("it contains a malformed percent-escape")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("it is not UTF-8 once percent-decoded") from None


def canonicalise(method: str) -> str:
    """The canonical form of an already-decoded method: no leading ``/``, no dot or empty segment.

    ``admin/../public`` -> ``public``; ``../x`` -> ``x``; ``..`` -> ``""``.
    A backslash is an ordinary character, not a separator.

    :raises APIError: 400 ``ERR_MALFORMED_REQUEST`` on ``#``, ``?``, NUL or a control character.
    """
    m = FORBIDDEN.search(method)
    if m is not None:
        raise _malformed(f"character {m.group()!r} is not allowed in a method name")
    out: list[str] = []
    for seg in method.split("/"):
        if seg == "" or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/".join(out)


_CANONICAL: dict[str, str] = {}  # raw method -> canonical, for methods seen before (bounded)


def canonical_http_method(raw: str) -> str:
    """Decode once and canonicalise a method from a URL; 400 when it is empty."""
    method = _CANONICAL.get(raw)
    if method is not None:
        return method
    method = canonicalise(decode_method(raw))
    if not method:
        raise _malformed("the method name is missing")
    if len(_CANONICAL) < 4096:
        _CANONICAL[raw] = method
    return method


def is_canonical(method: str) -> bool:
    """True when ``method`` is non-empty, free of forbidden characters and already canonical."""
    if not method or FORBIDDEN.search(method) is not None:
        return False
    return canonicalise(method) == method


def dispatch_path(method: str) -> str:
    """The URL path for the app: ``/`` and each canonical segment percent-encoded."""
    return "/" + "/".join(quote(seg, safe=_SAFE) for seg in method.split("/"))
