"""Where a sidecar's identity comes from: flags, environment and Configuration -> settings.

Rules (each pinned by a test):

* mTLS is on with ``--enable-mtls``, or with ``spec.mtls.enabled: true`` in the Configuration.
* The identity is ``spiffe://<td>/ns/<NAMESPACE>/<app-id>`` where ``<td>`` is the
  app's own trust domain, ``spec.accessControl.trustDomain`` (default ``public``).
  The control plane's trust domain (``--control-plane-trust-domain``, the
  sentry's ``--trust-domain``) names the sentry, not the app.
* Trust anchors: ``DAPR_TRUST_ANCHORS`` (PEM text), else ``--trust-anchors-file`` (watched).
* ``DAPR_CERT_CHAIN``/``DAPR_CERT_KEY``:
  - a workload SVID (a leaf with a ``spiffe://`` URI SAN) from an outside CA is
    used as this sidecar's identity, without a sentry (it cannot be renewed);
  - the issuer's CA certificate and key (Dapr's self-hosted walkthrough) are
    ignored: one warning, the identity still comes from the sentry, and the key
    is never used to sign anything;
  - anything else stops start-up with a message saying what was expected.
* Peers are accepted from the app's own trust domain, the trust domains named by
  its access-control policies, and ``spec.mtls.federatedTrustDomains`` (a pydapr
  extension); nothing else (security spec 6, decision 6).
* ``spec.mtls.workloadCertTTL`` caps how long the sidecar keeps a certificate
  (it renews at half of the shorter of that and the issued lifetime);
  ``allowedClockSkew`` is how far the sentry's clock may run ahead when the
  sidecar checks its freshly issued certificate. The lifetime itself is the
  sentry's decision (check C8).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..durations import parse_duration
from ..errors import ConfigError
from .bundle import AnchorSource, BundleError
from .pem import key_matches, load_certificates, load_private_key
from .spiffe import DEFAULT_TRUST_DOMAIN, SpiffeID, SVIDError, validate_trust_domain
from .svid import SVID

if TYPE_CHECKING:
    from ..daprd.options import Options
    from ..resources import Configuration

__all__ = ["IdentitySettings", "classify_credentials", "ISSUER_KEY_WARNING"]

log = logging.getLogger("pydapr.identity")

ISSUER_KEY_WARNING = (
    "DAPR_CERT_CHAIN/DAPR_CERT_KEY hold the issuer's CA certificate and key: handing a sidecar "
    "the issuer key weakens zero trust (whoever reads this process's environment can mint any "
    "identity). pydapr ignores them: the key is never used, and this sidecar's identity comes "
    "from the sentry. Remove both variables.")


@dataclass
class IdentitySettings:
    """What :class:`pydapr.identity.Identity` needs; see the module docstring for the rules."""

    spiffe_id: SpiffeID
    anchors: AnchorSource
    sentry_address: str = ""
    control_plane_namespace: str = "default"
    control_plane_trust_domain: str = "localhost"
    token_file: str = ""
    token_validator: str = ""
    static_svid: SVID | None = field(default=None, repr=False)
    trust_domains: frozenset[str] = frozenset()
    max_ttl: float | None = None
    clock_skew: float = 900.0
    poll_interval: float = 1.0
    startup_timeout: float = 30.0

    @classmethod
    def from_options(cls, options: Options, config: Configuration) -> IdentitySettings | None:
        """Settings for this sidecar, or None when mTLS is off. :raises ConfigError:"""
        mtls = config.section("mtls")
        static = None
        if options.cert_chain or options.cert_key:
            static = classify_credentials(options.cert_chain, options.cert_key)
            if static is None:
                log.warning(ISSUER_KEY_WARNING)
        if not (options.enable_mtls or mtls.get("enabled") is True):
            if static is not None:
                log.warning("DAPR_CERT_CHAIN holds a workload SVID but mTLS is off "
                            "(--enable-mtls): it is not used")
            return None
        acl = config.section("accessControl")
        where = config.source or "configuration"
        try:
            td = validate_trust_domain(str(acl.get("trustDomain") or DEFAULT_TRUST_DOMAIN))
            sid = SpiffeID.for_app(td, options.namespace, options.app_id)
        except SVIDError as exc:
            raise ConfigError(f"{where}: field spec.accessControl.trustDomain or app id: "
                              f"{exc.reason}") from None
        try:
            anchors = AnchorSource(options.trust_anchors, options.trust_anchors_file or None)
        except BundleError as exc:
            raise ConfigError(str(exc)) from None
        sentry = options.sentry_address or str(mtls.get("sentryAddress") or "")
        if static is not None:
            if sentry:
                log.info("DAPR_CERT_CHAIN holds a workload SVID: it is this sidecar's identity and "
                         "the sentry at %s is not used", sentry)
            if static.spiffe_id != sid:
                raise ConfigError(f"DAPR_CERT_CHAIN asserts {static.spiffe_id}, but this sidecar is "
                                  f"{sid} (app id, NAMESPACE and spec.accessControl.trustDomain)")
        elif not sentry:
            raise ConfigError("--enable-mtls needs --sentry-address (or spec.mtls.sentryAddress), "
                              "or a workload SVID in DAPR_CERT_CHAIN/DAPR_CERT_KEY")
        return cls(spiffe_id=sid, anchors=anchors, sentry_address=sentry,
                   control_plane_namespace=options.control_plane_namespace,
                   control_plane_trust_domain=options.control_plane_trust_domain,
                   token_file=options.sentry_token_file, static_svid=static,
                   trust_domains=accepted_trust_domains(td, config),
                   max_ttl=_duration(mtls, "workloadCertTTL", where),
                   clock_skew=_duration(mtls, "allowedClockSkew", where) or 900.0)


def _duration(mtls: dict[str, Any], key: str, where: str) -> float | None:
    if mtls.get(key) is None:
        return None
    try:
        value = parse_duration(mtls[key])
    except ValueError as exc:
        raise ConfigError(f"{where}: field spec.mtls.{key}: {exc}") from None
    if value < 0:
        raise ConfigError(f"{where}: field spec.mtls.{key}: must not be negative")
    return value


def accepted_trust_domains(own: str, config: Configuration) -> frozenset[str]:
    """Own trust domain, those of the access-control policies, and the federated ones."""
    out = {own}
    for policy in config.section("accessControl").get("policies") or []:
        if isinstance(policy, dict) and isinstance(policy.get("trustDomain"), str):
            out.add(policy["trustDomain"])
    federated = config.section("mtls").get("federatedTrustDomains") or []
    if not isinstance(federated, list) or not all(isinstance(t, str) for t in federated):
        raise ConfigError(f"{config.source}: field spec.mtls.federatedTrustDomains: must be a list "
                          "of trust domain names")
    out.update(federated)
    return frozenset(out)


def classify_credentials(chain_pem: str, key_pem: str) -> SVID | None:
    """``DAPR_CERT_CHAIN``/``DAPR_CERT_KEY``: a workload :class:`SVID`, or None for issuer credentials.

    :raises ConfigError: one variable without the other, unparsable PEM, a key
        that does not match, or a certificate that is neither kind.
    """
    if not chain_pem or not key_pem:
        raise ConfigError("DAPR_CERT_CHAIN and DAPR_CERT_KEY must be set together")
    try:
        certs = load_certificates(chain_pem, "DAPR_CERT_CHAIN")
        key = load_private_key(key_pem, "DAPR_CERT_KEY")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    leaf = certs[0]
    if not key_matches(leaf, key):
        raise ConfigError("DAPR_CERT_KEY does not match the first certificate of DAPR_CERT_CHAIN")
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:
        return None
    try:
        uris = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    if len(spiffe) != 1:
        raise ConfigError("DAPR_CERT_CHAIN: the first certificate is neither an issuer CA nor a "
                          "workload SVID (a leaf with one spiffe:// URI SAN)")
    try:
        sid = SpiffeID.parse(spiffe[0])
    except SVIDError as exc:
        raise ConfigError(f"DAPR_CERT_CHAIN: {exc.reason}") from None
    return SVID(sid, tuple(certs), key, received_at=time.time())
