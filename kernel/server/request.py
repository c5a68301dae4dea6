"""The request and response objects of the HTTP API (built once per request, kept lean)."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from ..errors import APIError

__all__ = ["Request", "Response", "JSON"]

JSON = "application/json"


class Request:
    """One HTTP request to the Dapr API.

    ``headers`` maps lower-case names to values; a repeated header's values are
    joined with ``", "`` (so a doubled ``dapr-api-token`` can never equal a token).
    It is built on first use from the raw header pairs, so routes that never
    look at headers (health checks) never pay for decoding them.
    ``params`` holds the route's path parameters.
    """

    __slots__ = ("method", "path", "query_string", "_headers", "_raw", "body", "params", "peer",
                 "_query")

    def __init__(self, method: str, path: str, query_string: str,
                 headers: dict[str, str] | None = None, body: bytes = b"", peer: Any = None,
                 raw_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self._headers = headers
        self._raw = raw_headers
        self.body = body
        self.params: dict[str, str] = {}
        self.peer = peer
        self._query: dict[str, list[str]] | None = None

    @property
    def headers(self) -> dict[str, str]:
        h = self._headers
        if h is None:
            h = self._headers = {}
            for name, value in self._raw or ():
                key = name.decode("latin-1").lower()
                val = value.decode("latin-1")
                prior = h.get(key)
                h[key] = val if prior is None else f"{prior}, {val}"
        return h

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = value

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True) if self.query_string else {}
        return self._query

    def query_first(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def request_metadata(self) -> dict[str, str]:
        """``metadata.<k>=v`` query parameters as ``{k: v}`` (first value wins, spec 0.4)."""
        return {k[9:]: v[0] for k, v in self.query.items() if k.startswith("metadata.") and len(k) > 9}

    def json(self, what: str = "request body") -> Any:
        """The body decoded as JSON.

        :raises APIError: ``ERR_MALFORMED_REQUEST`` naming ``what`` when it is not JSON.
        """
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise APIError("ERR_MALFORMED_REQUEST", f"{what} is not valid JSON: {exc}") from None


class Response:
    """A response to write: status, body and extra headers (content type separate)."""

    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, orjson.dumps(obj), headers, JSON)

    @classmethod
    def from_error(cls, err: APIError) -> Response:
        return cls(err.http_status, err.http_body(), None, JSON)

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), None, "text/plain; charset=utf-8")


NO_CONTENT = Response(204)
