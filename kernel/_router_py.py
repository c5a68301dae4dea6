"""HTTP route matching: the reference twin of ``pydapr._speedups._router``.

Patterns are ``/``-separated segments: a literal, ``{name}`` (one segment,
percent-decoded) or a final ``{name*}`` (the raw remainder, possibly empty,
left encoded so that service invocation canonicalises it exactly once).
Empty segments are ignored, so ``//`` collapses and a trailing ``/`` is
optional, as in daprd. Literal segments win over parameters, parameters over
a catch-all; a path that matches no route for the verb returns ``None`` (the
caller falls through to service invocation).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from .errors import MalformedPath

__all__ = ["Router"]

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode(segment: str) -> str:
    if "%" not in segment:
        return segment
    if _BAD_ESCAPE.search(segment):
        raise MalformedPath(f"invalid percent-escape in path segment {segment!r}")
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise MalformedPath(f"path segment {segment!r} does not decode to UTF-8") from None


class _Node:
    __slots__ = ("literal", "param", "rest", "leaf", "rest_leaf")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.rest: dict[str, tuple[Any, tuple[str, ...]]] | None = None  # catch-all leaf
        self.leaf: dict[str, tuple[Any, tuple[str, ...]]] = {}  # method -> (value, names)


class Router:
    """Maps (method, path) to a value and its path parameters."""

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, methods: tuple[str, ...] | list[str], pattern: str, value: Any) -> None:
        """Register ``value`` for ``pattern`` and each verb in ``methods`` (``"*"`` = any verb).

        :raises ValueError: on a malformed pattern or a route already registered.
        """
        node = self._root
        names: list[str] = []
        segments = [s for s in pattern.split("/") if s]
        for i, seg in enumerate(segments):
            if seg.startswith("{") and seg.endswith("*}"):
                if i != len(segments) - 1:
                    raise ValueError(f"catch-all must be the last segment: {pattern!r}")
                names.append(seg[1:-2])
                if node.rest is None:
                    node.rest = {}
                self._put(node.rest, methods, value, tuple(names), pattern)
                return
            if seg.startswith("{") and seg.endswith("}"):
                names.append(seg[1:-1])
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                node = node.literal.setdefault(seg, _Node())
        self._put(node.leaf, methods, value, tuple(names), pattern)

    @staticmethod
    def _put(table: dict, methods: Any, value: Any, names: tuple[str, ...], pattern: str) -> None:
        for m in methods:
            if m in table:
                raise ValueError(f"route {m} {pattern} is registered twice")
            table[m] = (value, names)

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
        """Return ``(value, params)`` or ``None``.

        :raises MalformedPath: when a matched parameter has a bad percent-escape.
        """
        parts = path.split("/")
        values: list[str] = []
        found = self._walk(self._root, parts, 0, method, values)
        if found is None:
            return None
        value, names = found
        return value, {n: (str(v) if type(v) is _Raw else _decode(v)) for n, v in zip(names, values)}

    def _walk(self, node: _Node, parts: list[str], i: int, method: str,
              values: list[str]) -> tuple[Any, tuple[str, ...]] | None:
        n = len(parts)
        while i < n and not parts[i]:
            i += 1
        if i == n:
            hit = node.leaf.get(method) or node.leaf.get("*")
            if hit is not None:
                return hit
            if node.rest is not None:
                hit = node.rest.get(method) or node.rest.get("*")
                if hit is not None:
                    values.append(_Raw(""))
                    return hit
            return None
        seg = parts[i]
        child = node.literal.get(seg)
        if child is not None:
            hit = self._walk(child, parts, i + 1, method, values)
            if hit is not None:
                return hit
        if node.param is not None:
            values.append(seg)
            hit = self._walk(node.param, parts, i + 1, method, values)
            if hit is not None:
                return hit
            values.pop()
        if node.rest is not None:
            hit = node.rest.get(method) or node.rest.get("*")
            if hit is not None:
                values.append(_Raw("/".join(parts[i:])))
                return hit
        return None


class _Raw(str):
    """Marks the catch-all value, which stays percent-encoded."""

    __slots__ = ()
