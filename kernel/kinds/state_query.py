"""The state query language (alpha): parsed once by the API, then translated by each store.

A query is ``{"filter": ..., "sort": [...], "page": {"limit": N, "token": "..."}}``
with filters ``EQ``, ``NEQ``, ``GT``, ``GTE``, ``LT``, ``LTE`` (``{field: value}``),
``IN`` (``{field: [values]}``), ``AND`` and ``OR`` (lists of filters). A field is a
dotted path into the JSON value (``person.org``). :func:`parse_query` checks the
shape and says what is wrong; :func:`matches` and :func:`order` evaluate a query in
Python for stores without a query engine, with the ordering PostgreSQL uses for
``jsonb`` (null < string < number < boolean < array < object; missing fields never match).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, TypeVar, Union

import orjson

__all__ = ["Cmp", "In", "Bool", "Filter", "Sort", "Query", "parse_query", "matches", "order",
           "page_window", "paginate", "lookup", "MISSING", "COMPARISONS"]

COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE")
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str  # one of COMPARISONS
    path: tuple[str, ...]
    value: Any


@dataclass(frozen=True, slots=True)
class In:
    path: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # AND | OR
    items: tuple[Filter, ...]


Filter = Union[Cmp, In, Bool]


@dataclass(frozen=True, slots=True)
class Sort:
    path: tuple[str, ...]
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    filter: Filter | None = None
    sort: tuple[Sort, ...] = ()
    limit: int = 0  # 0: no limit
    token: str = ""  # opaque paging token (a decimal offset for the built-in stores)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _path(name: Any, where: str) -> tuple[str, ...]:
    if not isinstance(name, str) or not name or any(not p for p in name.split(".")):
        raise ValueError(f"{where}: field name must be a dotted path like 'person.org', got {name!r}")
    return tuple(name.split("."))


def _single(body: Any, op: str) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise ValueError(f"{op} filter takes exactly one field: {{\"{op}\": {{\"field\": value}}}}")
    return next(iter(body.items()))


def _filter(obj: Any) -> Filter:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("a filter is an object with one operator: EQ, NEQ, GT, GTE, LT, LTE, IN, "
                         f"AND or OR; got {orjson.dumps(obj).decode()[:200]}")
    op, body = next(iter(obj.items()))
    if op in COMPARISONS:
        name, value = _single(body, op)
        if isinstance(value, (dict, list)):
            raise ValueError(f"{op} compares a field with a scalar value, got {value!r}")
        return Cmp(op, _path(name, op), value)
    if op == "IN":
        name, values = _single(body, op)
        if not isinstance(values, list) or not values:
            raise ValueError("IN takes a non-empty list of values: {\"IN\": {\"field\": [v1, v2]}}")
        return In(_path(name, op), tuple(values))
    if op in ("AND", "OR"):
        if not isinstance(body, list) or not body:
            raise ValueError(f"{op} takes a non-empty list of filters")
        return Bool(op, tuple(_filter(f) for f in body))
    raise ValueError(f"unknown filter operator {op!r}")


def parse_query(obj: Any) -> Query:
    """Validate a decoded query document.

    :raises ValueError: naming what is wrong (answered 400 ``ERR_MALFORMED_REQUEST``).
    """
    if not isinstance(obj, dict):
        raise ValueError("the query must be a JSON object with filter, sort and page")
    unknown = set(obj) - {"filter", "sort", "page"}
    if unknown:
        raise ValueError(f"unknown query field(s): {', '.join(sorted(unknown))}")
    flt = _filter(obj["filter"]) if obj.get("filter") else None
    sorts = []
    for s in obj.get("sort") or ():
        if not isinstance(s, dict) or "key" not in s:
            raise ValueError("each sort entry is {\"key\": \"field\", \"order\": \"ASC\"|\"DESC\"}")
        direction = str(s.get("order", "ASC")).upper()
        if direction not in ("ASC", "DESC"):
            raise ValueError(f"sort order must be ASC or DESC, got {s.get('order')!r}")
        sorts.append(Sort(_path(s["key"], "sort"), direction == "DESC"))
    page = obj.get("page") or {}
    if not isinstance(page, dict):
        raise ValueError("page must be an object {\"limit\": N, \"token\": \"...\"}")
    limit = page.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"page.limit must be a non-negative integer, got {limit!r}")
    token = page.get("token", "")
    if not isinstance(token, str):
        raise ValueError("page.token must be a string")
    return Query(flt, tuple(sorts), limit, token, obj)


# --------------------------------------------------------------------------- evaluation


def lookup(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a decoded JSON document, or :data:`MISSING`."""
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return MISSING
        doc = doc[part]
    return doc


def _rank(v: Any) -> tuple[int, Any]:
    """jsonb's cross-type order: null < string < number < boolean < array < object."""
    if v is None:
        return (0, 0)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, bool):
        return (3, v)
    if isinstance(v, (int, float)):
        return (2, v)
    return (4 if isinstance(v, list) else 5, orjson.dumps(v, option=orjson.OPT_SORT_KEYS))


def _compare(op: str, got: Any, want: Any) -> bool:
    if got is MISSING:
        return False
    a, b = _rank(got), _rank(want)
    if op == "EQ":
        return a == b
    if op == "NEQ":
        return a != b
    if op == "GT":
        return a > b
    if op == "GTE":
        return a >= b
    if op == "LT":
        return a < b
    return a <= b  # LTE


def matches(flt: Filter | None, doc: Any) -> bool:
    """Whether a decoded JSON value passes the filter."""
    if flt is None:
        return True
    if isinstance(flt, Cmp):
        return _compare(flt.op, lookup(doc, flt.path), flt.value)
    if isinstance(flt, In):
        got = lookup(doc, flt.path)
        return any(_compare("EQ", got, v) for v in flt.values)
    results = (matches(f, doc) for f in flt.items)
    return all(results) if flt.op == "AND" else any(results)


T = TypeVar("T")


def order(rows: Iterable[tuple[str, Any, T]], sorts: tuple[Sort, ...]) -> list[T]:
    """Sort ``(key, decoded value, item)`` rows by the query's sort (then by key); missing
    fields sort last ascending and first descending, as NULLs do in PostgreSQL."""
    out = sorted(rows, key=lambda r: r[0])
    for s in reversed(sorts):
        def key(r: tuple[str, Any, T], s: Sort = s) -> tuple:
            v = lookup(r[1], s.path)
            return (1, (0, 0)) if v is MISSING else (0, _rank(v))
        out.sort(key=key, reverse=s.descending)
    return [r[2] for r in out]


def page_window(query: Query) -> tuple[int, int]:
    """``(offset, limit)`` from the page token and limit (limit 0: all).

    :raises ValueError: when the token is not one this store issued.
    """
    if not query.token:
        return 0, query.limit
    if not query.token.isdigit():
        raise ValueError(f"invalid page token {query.token!r}")
    return int(query.token), query.limit


def paginate(items: list[T], query: Query) -> tuple[list[T], str]:
    """One page of ``items`` (already filtered and sorted) and the token of the next, if any."""
    offset, limit = page_window(query)
    page = items[offset:offset + limit] if limit else items[offset:]
    more = bool(limit) and offset + len(page) < len(items)
    return page, str(offset + len(page)) if more else ""
