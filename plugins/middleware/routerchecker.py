"""``middleware.http.routerchecker``: refuse request URIs that do not match ``rule``.

As in daprd the regular expression is searched in the request URI (path and
query) and a miss answers 400 ``invalid router``. Stricter: the URI must
match both as received and percent-decoded, so an escape such as ``%2e%2e``
cannot slip past a rule written against the plain characters.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.metadata import meta
from pydapr.registry import MiddlewareType
from pydapr.server.request import Request, Response

from ._base import CallNext, HTTPMiddleware, compile_rule, register

__all__ = ["RouterCheckerMiddleware", "RouterCheckerMetadata"]

_INVALID = Response.text(400, "invalid router")


@dataclass(frozen=True)
class RouterCheckerMetadata:
    rule: str = meta(doc="regular expression the request URI must match")


class RouterCheckerMiddleware(HTTPMiddleware):
    metadata_type = RouterCheckerMetadata

    async def init(self) -> None:
        if not self.md.rule:
            raise ConfigError(f"{self.where}: field rule: must not be empty")
        self.rule = compile_rule(self.md.rule, f"{self.where}: field rule")

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        uri = f"{request.path}?{request.query_string}" if request.query_string else request.path
        if not self.rule.search(uri) or not self.rule.search(unquote(uri)):
            return _INVALID
        return await call_next(request)


@hookimpl
def pydapr_middleware_types() -> list[MiddlewareType]:
    return [register("middleware.http.routerchecker", RouterCheckerMiddleware)]
