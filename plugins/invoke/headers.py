"""Header hygiene for service invocation (security spec 1.9, 1.12, 3.6).

* hop-by-hop headers (and those named in ``Connection``) never cross a hop,
  in either direction;
* tokens never cross a hop: ``dapr-api-token`` is dropped at the caller's
  edge and again at the callee's, and the callee's app channel *sets* its own
  ``APP_API_TOKEN``; an ``Authorization`` header that only selected the
  target (``Basic dapr-app-id:<id>``) is dropped, and so is any header a
  middleware registered in ``runtime.stash[SIDECAR_AUTH_HEADERS]`` as the
  caller's credential *to its sidecar*;
* ``dapr-caller-app-id``, ``dapr-caller-namespace`` and ``dapr-callee-app-id``
  are stripped whatever their case and stamped by the callee's sidecar;
* the framing headers (``content-length``, ``host``) are the transport's own.
"""
from __future__ import annotations

import re
from typing import Iterable

__all__ = ["HOP_BY_HOP", "IDENTITY", "SIDECAR_AUTH_HEADERS", "outbound_headers", "response_headers",
           "valid_name", "valid_value", "is_app_id_basic_auth"]

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "upgrade", "http2-settings", "te", "trailer", "proxy-authorization",
                        "proxy-authenticate"})
IDENTITY = frozenset({"dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"})
_ALWAYS = frozenset({"dapr-api-token", "dapr-app-id", "host", "content-length"}) | IDENTITY
#: runtime.stash key: a set of lower-case header names that carry the caller's credential
#: to its own sidecar (added by httpPipeline middleware); they are never forwarded
SIDECAR_AUTH_HEADERS = "invoke.sidecar_auth_headers"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def valid_name(name: str) -> bool:
    return bool(_TOKEN.match(name))


def valid_value(value: str) -> bool:
    return _BAD_VALUE.search(value) is None


def is_app_id_basic_auth(value: str) -> bool:
    """``Authorization: Basic base64("dapr-app-id:<id>")`` (a way to pick the target)."""
    import base64
    import binascii
    scheme, _, cred = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        return base64.b64decode(cred.strip(), validate=True).startswith(b"dapr-app-id:")
    except (binascii.Error, ValueError):
        return False


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            named.update(p.strip().lower() for p in v.split(",") if p.strip())
    return named


_OUT_DROP = _ALWAYS | HOP_BY_HOP
_BACK_DROP = HOP_BY_HOP | {"content-length", "server", "dapr-api-token"}
_NAMES: dict[str, str | None] = {}  # raw name -> lower-case valid name, or None; bounded


def _name(raw: str) -> str | None:
    key = _NAMES.get(raw, "")
    if key == "":
        low = raw.lower()
        key = low if _TOKEN.match(low) else None
        if len(_NAMES) < 4096:
            _NAMES[raw] = key
    return key


def _filtered(items: list[tuple[str, str]], drop: frozenset[str] | set[str]
              ) -> list[tuple[str, str]]:
    out = []
    connection = False
    for k, v in items:
        key = _name(k)
        if key is None or key in drop or _BAD_VALUE.search(v) is not None:
            connection = connection or key == "connection"
            continue
        if key == "authorization" and is_app_id_basic_auth(v):
            continue
        out.append((key, v))
    if connection:  # drop the headers the Connection header names as hop-by-hop
        named = _connection_named(items)
        out = [(k, v) for k, v in out if k not in named]
    return out


def outbound_headers(headers: Iterable[tuple[str, str]], extra_drop: Iterable[str] = ()
                     ) -> list[tuple[str, str]]:
    """Headers safe to send to another app: no hop-by-hop, token, identity or framing header.

    Names come out lower-case; invalid names or values are dropped.
    """
    drop = _OUT_DROP | {d.lower() for d in extra_drop} if extra_drop else _OUT_DROP
    return _filtered(list(headers), drop)


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """An app's response headers as passed back: no hop-by-hop, framing or ``server`` header."""
    return _filtered(list(headers), _BACK_DROP)
