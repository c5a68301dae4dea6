"""The state API over HTTP (spec 2.1 to 2.7): Dapr's paths, bodies, status codes and headers.

Values arrive as JSON and are stored as their JSON encoding; GET answers the
stored bytes verbatim with ``ETag`` and ``metadata.*`` headers, 204 when the
key is missing.
"""
from __future__ import annotations

from typing import Any

import orjson

from pydapr.kinds.state import DeleteRequest, GetRequest, SetRequest
from pydapr.registry import Route
from pydapr.server.request import JSON, NO_CONTENT, Request, Response

from .core import (StateCore, check_ttl, json_fragment, malformed, options,
                   transaction_op)

__all__ = ["StateHTTP"]


def _query_meta(req: Request) -> dict[str, str]:
    return req.request_metadata() if req.query_string else {}


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise malformed(f"{what} must be an object of string values")
    return value


def _etag(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise malformed(f"etag must be a string, got {orjson.dumps(value).decode()}")
    return value


def _item_parts(item: Any, qmeta: dict[str, str]) -> tuple[str, str | None, dict[str, str], Any]:
    """key, etag, metadata (query metadata wins) and options of one request item."""
    if not isinstance(item, dict):
        raise malformed("each state item must be a JSON object with a key")
    key = item.get("key")
    if not isinstance(key, str):
        raise malformed('"key" is a required field')
    md = _str_map(item.get("metadata"), "metadata")
    if qmeta:
        md = {**md, **qmeta}
    opts = item.get("options") or {}
    if not isinstance(opts, dict):
        raise malformed("options must be an object with concurrency and consistency")
    return key, _etag(item.get("etag")), md, options(opts.get("concurrency") or "",
                                                       opts.get("consistency") or "")


def _body_list(req: Request) -> list:
    body = req.json()
    if not isinstance(body, list):
        raise malformed("request body must be a JSON array of state items")
    return body


class StateHTTP:
    def __init__(self, core: StateCore) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route(("POST", "PUT"), "/v1.0/state/{store}", self.save, "state"),
            Route(("GET",), "/v1.0/state/{store}/{key}", self.get, "state"),
            Route(("DELETE",), "/v1.0/state/{store}/{key}", self.delete, "state"),
            Route(("POST", "PUT"), "/v1.0/state/{store}/bulk", self.bulk_get, "state"),
            Route(("POST", "PUT"), "/v1.0/state/{store}/transaction", self.transaction, "state"),
            Route(("POST", "PUT"), "/v1.0-alpha1/state/{store}/query", self.query, "state"),
        ]

    async def get(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        key = req.params["key"]
        if req.query_string:
            r = GetRequest(b.key(key), req.request_metadata(),
                           options("", req.query_first("consistency")).consistency)
        else:
            r = GetRequest(b.key(key))
        found = await self.core.get(b, r, key)
        if found is None:
            return NO_CONTENT
        headers = [("ETag", found.etag)] if found.etag else []
        if found.metadata:
            headers.extend((f"metadata.{k}", v) for k, v in found.metadata.items())
        return Response(200, found.data, headers, JSON)

    async def save(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        qmeta = _query_meta(req)
        reqs = []
        for item in _body_list(req):
            key, etag, md, opts = _item_parts(item, qmeta)
            check_ttl(md)
            reqs.append(SetRequest(b.key(key), orjson.dumps(item.get("value")), etag, md, opts, True))
        await self.core.save(b, reqs)
        return NO_CONTENT

    async def delete(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        key = b.key(req.params["key"])
        md = _query_meta(req)
        opts = options(req.query_first("concurrency"), req.query_first("consistency")) \
            if req.query_string else options("", "")
        await self.core.delete(b, DeleteRequest(key, req.headers.get("if-match") or None, md, opts))
        return NO_CONTENT

    async def bulk_get(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        body = req.json()
        if not isinstance(body, dict):
            raise malformed('request body must be {"keys": [...], "parallelism": N}')
        keys = body.get("keys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise malformed("keys must be an array of strings")
        par = body.get("parallelism") or 0
        if not isinstance(par, int) or isinstance(par, bool) or par < 0:
            raise malformed("parallelism must be a non-negative integer")
        md = {**_str_map(body.get("metadata"), "metadata"), **_query_meta(req)}
        gets = [GetRequest(b.key(k), md) for k in keys]
        if not gets:
            return Response.json([])
        try:
            items = await b.store.bulk_get(gets, par)
        except Exception as exc:
            raise self.core.fail("ERR_STATE_BULK_GET", exc,
                                 f"failed getting state in state store {b.name}") from None
        out = []
        for key, it in zip(keys, items):
            entry: dict[str, Any] = {"key": key}
            if it.error:
                entry["error"] = it.error
            elif it.data is not None:
                entry["data"] = json_fragment(it.data)
                if it.etag:
                    entry["etag"] = it.etag
                if it.metadata:
                    entry["metadata"] = it.metadata
            out.append(entry)
        return Response.json(out)

    async def transaction(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        body = req.json()
        if not isinstance(body, dict):
            raise malformed('request body must be {"operations": [...], "metadata": {...}}')
        raw_ops = body.get("operations") or []
        if not isinstance(raw_ops, list):
            raise malformed("operations must be a JSON array")
        md = {**_str_map(body.get("metadata"), "metadata"), **_query_meta(req)}
        ops = []
        for op in raw_ops:
            if not isinstance(op, dict) or not isinstance(op.get("request"), dict):
                raise malformed('each operation is {"operation": "upsert"|"delete", "request": {...}}')
            item = op["request"]
            key, etag, imd, opts = _item_parts(item, {})
            ops.append(transaction_op(b, str(op.get("operation")), key,
                                      orjson.dumps(item.get("value")), etag, imd, opts, True))
        await self.core.transaction(b, ops, md)
        return NO_CONTENT

    async def query(self, req: Request) -> Response:
        b = self.core.store(req.params["store"])
        resp = await self.core.query(b, req.json("query"), _query_meta(req))
        if not resp.results:
            return NO_CONTENT
        results = []
        for it in resp.results:
            entry: dict[str, Any] = {"key": it.key, "data": json_fragment(it.data)}
            if it.etag:
                entry["etag"] = it.etag
            if it.error:
                entry["error"] = it.error
            results.append(entry)
        out: dict[str, Any] = {"results": results}
        if resp.token:
            out["token"] = resp.token
        if resp.metadata:
            out["metadata"] = resp.metadata
        return Response.json(out)

