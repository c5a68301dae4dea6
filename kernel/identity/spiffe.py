"""SPIFFE IDs in Dapr's profile: ``spiffe://<trust-domain>/ns/<namespace>/<app-id>``.

The parser is strict in the way go-spiffe is (security spec 2.1, V3 to V6 and
V11): lowercase ``spiffe://`` scheme, a trust domain of ``[a-z0-9._-]`` only
(so no userinfo, port, upper case or percent-encoding), path segments of
``[A-Za-z0-9._-]`` with no empty, ``.`` or ``..`` segment, and at most 2048
bytes. On top of the generic grammar, a workload ID must have exactly the three
segments ``ns/<namespace>/<app-id>``: Dapr accepts and ignores extra segments,
pydapr refuses them because its CA never issues them (security spec 6, decision 5).

The same rules that the CA applies before signing (check C2: app id non-empty,
no dots, at most 64 characters; namespace and trust domain well formed) live
here too, so that the sentry and the sidecar cannot disagree on what an
identity may look like.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PydaprError

__all__ = [
    "SpiffeID", "SVIDError", "MAX_ID_BYTES", "DEFAULT_TRUST_DOMAIN",
    "validate_trust_domain", "validate_namespace", "validate_app_id", "parse_uri",
]

#: longest SPIFFE ID accepted (SPIFFE-ID section 2.3: support at least 2048 bytes; bound the work)
MAX_ID_BYTES = 2048
#: Dapr's trust domain when a Configuration names none (``spec.accessControl.trustDomain``)
DEFAULT_TRUST_DOMAIN = "public"
MAX_APP_ID = 64

_TD = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_APP_ID = re.compile(r"[A-Za-z0-9_-]+")


class SVIDError(PydaprError, ValueError):
    """A SPIFFE ID or X.509-SVID failed a check.

    :ivar check: the rule that failed, as numbered in security spec 2.1 and 2.3
        (``"V1"`` .. ``"V13"``, ``"C2"`` .. ``"C9"``), or ``"KEY"`` for a weak key.
    :ivar reason: a sentence saying what is wrong, fit for a log line or an error reply.
    """

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


def validate_trust_domain(td: str) -> str:
    """``td`` if it is a valid SPIFFE trust domain name, else :class:`SVIDError` (V4)."""
    if not td:
        raise SVIDError("V4", "the trust domain is empty")
    if len(td.encode()) > 255:
        raise SVIDError("V4", "the trust domain is longer than 255 bytes")
    if not _TD.fullmatch(td):
        raise SVIDError("V4", f"trust domain {td!r} may only contain lowercase letters, digits, "
                              "'.', '-' and '_' (no userinfo, port, upper case or %-encoding)")
    return td


def validate_namespace(namespace: str) -> str:
    """``namespace`` if it can be a SPIFFE path segment, else :class:`SVIDError` (C2)."""
    if not namespace:
        raise SVIDError("C2", "the namespace is empty")
    if len(namespace) > 253 or not _SEGMENT.fullmatch(namespace) or namespace in (".", ".."):
        raise SVIDError("C2", f"namespace {namespace!r} is not valid: use at most 253 letters, "
                              "digits, '.', '-' and '_'")
    return namespace


def validate_app_id(app_id: str) -> str:
    """``app_id`` if Dapr accepts it (non-empty, no dots, at most 64 chars), else :class:`SVIDError`."""
    if not app_id:
        raise SVIDError("C2", "the app id is empty")
    if "." in app_id:
        raise SVIDError("C2", f"app id {app_id!r} contains a dot")
    if len(app_id) > MAX_APP_ID:
        raise SVIDError("C2", f"app id is {len(app_id)} characters long, at most {MAX_APP_ID} allowed")
    if not _APP_ID.fullmatch(app_id):
        raise SVIDError("C2", f"app id {app_id!r} may only contain letters, digits, '-' and '_'")
    return app_id


@dataclass(frozen=True, slots=True)
class SpiffeID:
    """A workload identity ``spiffe://<trust_domain>/ns/<namespace>/<app_id>``.

    An *expected* ID whose ``trust_domain`` is ``""`` (built with
    :meth:`any_trust_domain`) matches the namespace and app id in every trust
    domain the verifier accepts: a caller usually does not know its callee's
    trust domain, as in Dapr's "unknown trust domain" dial option. A parsed ID
    never has an empty trust domain.
    """

    trust_domain: str
    namespace: str
    app_id: str

    @classmethod
    def for_app(cls, trust_domain: str, namespace: str, app_id: str) -> SpiffeID:
        """A validated ID (the CA's rules C2 and V4). :raises SVIDError:"""
        return cls(validate_trust_domain(trust_domain), validate_namespace(namespace),
                   validate_app_id(app_id))

    @classmethod
    def any_trust_domain(cls, namespace: str, app_id: str) -> SpiffeID:
        """An expected ID that pins namespace and app id but not the trust domain."""
        return cls("", validate_namespace(namespace), validate_app_id(app_id))

    @classmethod
    def parse(cls, uri: str) -> SpiffeID:
        """Parse and validate a workload ID (V3 to V6, V11 and Dapr's profile). :raises SVIDError:"""
        td, segments = parse_uri(uri)
        if not segments:
            raise SVIDError("V6", f"{uri!r} has no path: a workload ID needs one")
        if len(segments) != 3 or segments[0] != "ns":
            raise SVIDError("V5", f"{uri!r} is not of the form spiffe://<trust-domain>/ns/<namespace>/"
                                  "<app-id>")
        if "." in segments[2]:
            raise SVIDError("V5", f"{uri!r}: the app id contains a dot")
        return cls(td, segments[1], segments[2])

    @property
    def uri(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/{self.app_id}"

    def matches(self, expected: SpiffeID) -> bool:
        """True if this ID satisfies ``expected`` (whose empty trust domain matches any)."""
        return (self.namespace == expected.namespace and self.app_id == expected.app_id
                and (not expected.trust_domain or self.trust_domain == expected.trust_domain))

    def __str__(self) -> str:
        return self.uri if self.trust_domain else f"spiffe://*/ns/{self.namespace}/{self.app_id}"


def parse_uri(uri: str) -> tuple[str, list[str]]:
    """Split any SPIFFE ID into ``(trust_domain, segments)`` with the generic rules V3 to V5, V11."""
    if not isinstance(uri, str):
        raise SVIDError("V3", "the SPIFFE ID is not a string")
    if len(uri.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise SVIDError("V11", f"the SPIFFE ID is longer than {MAX_ID_BYTES} bytes")
    if not uri.startswith("spiffe://"):
        raise SVIDError("V3", f"{uri!r} does not start with 'spiffe://' (lowercase)")
    rest = uri[len("spiffe://"):]
    td, slash, path = rest.partition("/")
    if not td:
        raise SVIDError("V4", f"{uri!r} has an empty trust domain")
    if "?" in rest or "#" in rest:
        raise SVIDError("V3", f"{uri!r} has a query or fragment")
    try:
        validate_trust_domain(td)
    except SVIDError as exc:
        raise SVIDError("V4", f"{uri!r}: {exc.reason}") from None
    if not slash:
        return td, []
    segments = path.split("/")
    for seg in segments:
        if not seg:
            raise SVIDError("V5", f"{uri!r} has an empty path segment or a trailing '/'")
        if seg in (".", ".."):
            raise SVIDError("V5", f"{uri!r} has a '.' or '..' path segment")
        if not _SEGMENT.fullmatch(seg):
            raise SVIDError("V5", f"{uri!r}: path segments may only contain letters, digits, '.', "
                                  "'-' and '_' (no %-encoding)")
    return td, segments
