"""An invocation as it crosses the proxy loop: the header blocks of a request and its answer.

Request head: ``:app`` and ``:ns`` (the target), ``:method`` (canonical),
``:verb`` (upper case, empty when the call has none), ``:query``,
``:caller-app`` and ``:caller-ns``, then the forwarded headers. The caller
pseudo-headers are a courtesy for stamping ``dapr-caller-*`` when mTLS is
off; with mTLS the callee ignores them and reads the caller's identity from
the TLS session.

Answer head: ``:status``, then either the app's headers, or for a gRPC app
``:grpc-status``/``:grpc-message``, or for an error raised by the callee's
sidecar ``:error`` (the ``ERR_*`` code), ``:grpc-code`` and ``:message``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from pydapr.errors import APIError, CODES

__all__ = ["Call", "Result", "request_head", "parse_request_head", "result_head", "parse_result",
           "error_result"]

_GRPC_CODES = frozenset(c.name for c in grpc.StatusCode)


@dataclass(slots=True)
class Call:
    app_id: str
    namespace: str
    method: str                 # canonical (see .method)
    verb: str                   # "GET"...; "" when the call carries no verb
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    caller_app: str = ""
    caller_ns: str = ""


@dataclass(slots=True)
class Result:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    grpc_status: int | None = None   # set when the callee app speaks gRPC
    grpc_message: str = ""
    error: APIError | None = None    # set when the callee's sidecar refused or failed

    def header(self, name: str, default: str = "") -> str:
        for k, v in self.headers:
            if k == name:
                return v
        return default


def request_head(call: Call) -> list[tuple[str, str]]:
    """The request's header block; the pseudo-headers always come first, in this order."""
    return [(":app", call.app_id), (":ns", call.namespace), (":method", call.method),
            (":verb", call.verb), (":query", call.query), (":caller-app", call.caller_app),
            (":caller-ns", call.caller_ns), *call.headers]


def _split(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Pseudo-headers (``:name``) apart from the forwarded headers."""
    pseudo: dict[str, str] = {}
    headers = []
    for k, v in pairs:
        if k[0] == ":":
            pseudo[k] = v
        else:
            headers.append((k, v))
    return pseudo, headers


_REQUEST_KEYS = (":app", ":ns", ":method", ":verb", ":query", ":caller-app", ":caller-ns")


def parse_request_head(pairs: list[tuple[str, str]], body: bytes) -> Call:
    if len(pairs) >= 7 and pairs[0][0] == ":app" and pairs[6][0] == ":caller-ns" and \
            (pairs[1][0], pairs[2][0], pairs[3][0], pairs[4][0], pairs[5][0]) == _REQUEST_KEYS[1:6]:
        # request_head's own layout; a stray ":name" among the headers is dropped later, as
        # an invalid header name
        (_, app), (_, ns), (_, method), (_, verb), (_, query), (_, capp), (_, cns) = pairs[:7]
        return Call(app, ns, method, verb, query, pairs[7:], body, capp, cns)
    pseudo, headers = _split(pairs)
    return Call(pseudo.get(":app", ""), pseudo.get(":ns", ""), pseudo.get(":method", ""),
                pseudo.get(":verb", ""), pseudo.get(":query", ""), headers, body,
                pseudo.get(":caller-app", ""), pseudo.get(":caller-ns", ""))


def error_result(err: APIError) -> Result:
    return Result(err.http_status, [("content-type", "application/json")], err.http_body(),
                  error=err)


def result_head(res: Result) -> list[tuple[str, str]]:
    head = [(":status", str(res.status))]
    if res.error is not None:
        head += [(":error", res.error.code), (":grpc-code", res.error.grpc_code),
                 (":message", res.error.message)]
    if res.grpc_status is not None:
        head += [(":grpc-status", str(res.grpc_status)), (":grpc-message", res.grpc_message)]
    head += res.headers
    return head


def parse_result(pairs: list[tuple[str, str]], body: bytes) -> Result:
    pseudo, headers = _split(pairs)
    try:
        status = int(pseudo.get(":status", "500"))
    except ValueError:
        status = 500
    if not 100 <= status <= 599:
        status = 502
    res = Result(status, headers, body)
    if ":grpc-status" in pseudo:
        try:
            res.grpc_status = int(pseudo[":grpc-status"])
        except ValueError:
            res.grpc_status = 2
        res.grpc_message = pseudo.get(":grpc-message", "")
    code = pseudo.get(":error")
    if code:
        if code not in CODES:
            code = "ERR_DIRECT_INVOKE"
        grpc_code = pseudo.get(":grpc-code", "")
        res.error = APIError(code, pseudo.get(":message", ""), http_status=status,
                             grpc_code=grpc_code if grpc_code in _GRPC_CODES else None)
    return res
