"""pydapr's certificate authority (Dapr's ``sentry``): ``pydapr sentry`` / ``python -m pydapr.sentry``.

It issues X.509-SVIDs ``spiffe://<trust-domain>/ns/<namespace>/<app-id>`` to
sidecars that prove possession of a key (a CSR) and pass a token validator.

Modules:

* :mod:`.ca` the issuer credentials (create, load, validate, hot-reload);
* :mod:`.signer` the signing decision, checks C1 to C9 of the security spec;
* :mod:`.validators` ``insecure``, ``jwks`` and ``join-token`` attestation;
* :mod:`.server` the gRPC-over-TLS service (wire format in :mod:`pydapr.identity.protocol`);
* :mod:`.cli` flags -> settings; ``main(argv)`` is the ``sentry`` subcommand.

Embedding (tests, tools)::

    server = SentryServer(SentrySettings(credentials_dir="certs", port=0))
    port = await server.start()     # creates certs/ca.crt, issuer.crt, issuer.key if absent
    ...
    await server.stop()
"""
from __future__ import annotations

from .ca import CredentialsError, CredentialStore, IssuerCredentials, generate_credentials
from .server import SentryServer, SentrySettings
from .signer import Signer, issue_leaf
from .validators import SignError

__all__ = ["SentryServer", "SentrySettings", "Signer", "SignError", "issue_leaf",
           "CredentialStore", "CredentialsError", "IssuerCredentials", "generate_credentials"]
