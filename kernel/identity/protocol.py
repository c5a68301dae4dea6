"""The sentry's certificate-signing RPC: method name and message format.

Dapr's ``dapr.proto.sentry.v1`` stubs are not shipped by the Python SDK, so
pydapr's sentry serves one unary gRPC method with JSON messages (UTF-8, one
object, at most :data:`MAX_MESSAGE` bytes) over TLS. Field names follow Dapr's
``SignCertificateRequest``/``SignCertificateResponse``::

    rpc /pydapr.sentry.v1.CA/SignCertificate

    request  {"id": "<app-id>", "namespace": "<ns>", "trust_domain": "<td or empty: public>",
              "certificate_signing_request": "<PEM CSR>",
              "token": "<attestation token or empty>",
              "token_validator": "<'' (server default) | insecure | jwks | join-token>"}
    response {"workload_certificate": "<PEM: leaf, then issuer chain>",
              "trust_chain_certificates": ["<PEM root>", ...],
              "valid_until": "<RFC 3339 UTC>"}

Errors are gRPC status codes, as in Dapr: ``INVALID_ARGUMENT`` for an unknown
or disabled validator, a malformed message or CSR (checks C1, C6);
``PERMISSION_DENIED`` for failed identity checks or attestation (C2 to C4);
``UNAVAILABLE`` while the issuer credentials are unusable (being replaced).

The sentry serves with its own SVID ``spiffe://<control-plane-td>/ns/<ns>/dapr-sentry``
that also carries the DNS name :func:`sentry_server_name`; a workload
certificate never carries a DNS name (C7), so pinning that name pins the sentry.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .spiffe import SpiffeID

__all__ = [
    "SERVICE", "METHOD", "METHOD_PATH", "MAX_MESSAGE", "VALIDATORS", "SignRequest", "SignResponse",
    "sentry_server_name", "sentry_spiffe_id", "encode", "decode_request", "decode_response",
]

SERVICE = "pydapr.sentry.v1.CA"
METHOD = "SignCertificate"
METHOD_PATH = f"/{SERVICE}/{METHOD}"
#: upper bound of one message in either direction (a CSR is under 1 KiB)
MAX_MESSAGE = 64 * 1024
#: token validator names a request may carry ("" asks for the server's default)
VALIDATORS = ("insecure", "jwks", "join-token")


@dataclass(frozen=True)
class SignRequest:
    id: str
    namespace: str
    certificate_signing_request: str
    trust_domain: str = ""
    token: str = field(default="", repr=False)
    token_validator: str = ""


@dataclass(frozen=True)
class SignResponse:
    workload_certificate: str
    trust_chain_certificates: list[str]
    valid_until: str


def sentry_server_name(namespace: str) -> str:
    """The DNS name the sentry's serving certificate carries and clients pin."""
    return f"dapr-sentry.{namespace}.svc.cluster.local"


def sentry_spiffe_id(trust_domain: str, namespace: str) -> SpiffeID:
    return SpiffeID(trust_domain, namespace, "dapr-sentry")


def encode(message: SignRequest | SignResponse) -> bytes:
    return json.dumps(asdict(message), separators=(",", ":")).encode()


def _decode(data: bytes, cls: type, what: str) -> Any:
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"{what} is larger than {MAX_MESSAGE} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{what} is not a JSON object") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    out = {}
    for f in fields(cls):
        value = obj.get(f.name)
        if value is None:
            if f.default is MISSING:
                raise ValueError(f"{what}: field {f.name!r} is required")
            continue
        if f.type == "list[str]":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{what}: field {f.name!r} must be a list of strings")
        elif not isinstance(value, str):
            raise ValueError(f"{what}: field {f.name!r} must be a string")
        out[f.name] = value
    return cls(**out)


def decode_request(data: bytes) -> SignRequest:
    """:raises ValueError: not JSON, a field missing or of the wrong type."""
    return _decode(data, SignRequest, "the request")


def decode_response(data: bytes) -> SignResponse:
    """:raises ValueError: not JSON, a field missing or of the wrong type."""
    return _decode(data, SignResponse, "the response")
