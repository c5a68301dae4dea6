"""``pydapr sentry``: flags (Dapr's sentry flags, spec 12.3) -> :class:`SentrySettings` -> serve.

Differences from Dapr's sentry, each on purpose:

* ``--listen-address`` defaults to 127.0.0.1 (loopback by default everywhere);
* the ``insecure`` validator is refused on any non-loopback address; use
  ``--jwks-source`` (a JWKS file or URL) or ``--join-tokens`` (a YAML file of
  ``app-id: token``), or the Configuration's ``spec.mtls.tokenValidators``
  (``{name: jwks, options: {source: ...}}``, ``{name: join-token, options: {path: ...}}``);
* ``--issuer-credentials`` defaults to ``$PYDAPR_HOME/certs`` (``~/.pydapr/certs``);
* ``--config`` is a file path and has no default (Dapr's default names a Kubernetes object);
* the health endpoint (``GET /healthz``) is served only when ``--healthz-port`` is given;
* ``--mode kubernetes`` is not supported yet.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from typing import Sequence

from pydapr.durations import parse_duration
from pydapr.errors import ConfigError, PydaprError
from pydapr.logs import setup_logging
from pydapr.resources import load_configuration

from .ca import CredentialsError
from .server import SentryServer, SentrySettings

__all__ = ["main", "build_parser", "settings_from_args"]

log = logging.getLogger("pydapr.sentry")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"pydapr sentry: {message} (see pydapr sentry --help)")


def build_parser() -> argparse.ArgumentParser:
    home = os.environ.get("PYDAPR_HOME", "~/.pydapr")
    p = _Parser(prog="pydapr sentry", description="pydapr's certificate authority (Dapr sentry).",
                allow_abbrev=False)
    a = p.add_argument
    a("--config", default="", help="Configuration file (spec.mtls: workloadCertTTL, "
      "allowedClockSkew, tokenValidators)")
    a("--issuer-credentials", default=os.path.join(home, "certs"),
      help="directory of ca.crt, issuer.crt and issuer.key (created when empty)")
    a("--issuer-ca-filename", default="ca.crt")
    a("--issuer-certificate-filename", default="issuer.crt")
    a("--issuer-key-filename", default="issuer.key")
    a("--trust-domain", default="localhost", help="the control plane's trust domain")
    a("--control-plane-namespace", default=None, help="namespace of the sentry's own identity "
      "(default: $NAMESPACE, else 'default')")
    a("--port", type=int, default=50001)
    a("--listen-address", default="127.0.0.1")
    a("--jwks-source", default="", help="JWKS file or URL: enables the jwks validator")
    a("--join-tokens", default="", help="YAML file of app-id (or namespace/app-id) -> token: "
      "enables the join-token validator")
    a("--healthz-port", type=int, default=0, help="serve GET /healthz on this port (0: off)")
    a("--healthz-listen-address", default="127.0.0.1")
    a("--mode", default="standalone", choices=["standalone", "kubernetes"])
    a("--log-level", default="info", choices=["debug", "info", "warn", "warning", "error", "fatal"])
    a("--log-as-json", action="store_true")
    return p


def _validator_options(mtls: dict, name: str, key: str) -> str:
    for v in mtls.get("tokenValidators") or []:
        if isinstance(v, dict) and v.get("name") == name:
            value = (v.get("options") or {}).get(key, "")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"spec.mtls.tokenValidators[{name}]: options.{key} is required")
            return value
    return ""


def settings_from_args(ns: argparse.Namespace, env: dict[str, str] | None = None) -> SentrySettings:
    """Flags, then environment, then ``--config``, then defaults. :raises ConfigError:"""
    env = dict(os.environ) if env is None else env
    if ns.mode != "standalone":
        raise ConfigError("pydapr sentry: --mode kubernetes is not supported yet")
    s = SentrySettings(
        credentials_dir=ns.issuer_credentials, trust_domain=ns.trust_domain,
        namespace=ns.control_plane_namespace or env.get("NAMESPACE") or "default",
        listen_address=ns.listen_address, port=ns.port, jwks_source=ns.jwks_source,
        join_tokens=ns.join_tokens, ca_filename=ns.issuer_ca_filename,
        cert_filename=ns.issuer_certificate_filename, key_filename=ns.issuer_key_filename,
        healthz_port=ns.healthz_port, healthz_listen_address=ns.healthz_listen_address)
    if ns.config:
        config = load_configuration([ns.config])
        mtls = config.section("mtls")
        for field, key in (("ttl", "workloadCertTTL"), ("skew", "allowedClockSkew")):
            if mtls.get(key) is not None:
                try:
                    seconds = parse_duration(mtls[key])
                except ValueError as exc:
                    raise ConfigError(f"{config.source}: field spec.mtls.{key}: {exc}") from None
                if seconds < 0 or (field == "ttl" and seconds < 1):
                    raise ConfigError(f"{config.source}: field spec.mtls.{key}: must be "
                                      f"{'at least 1s' if field == 'ttl' else 'positive'}")
                setattr(s, field, dt.timedelta(seconds=seconds))
        s.jwks_source = s.jwks_source or _validator_options(mtls, "jwks", "source")
        s.join_tokens = s.join_tokens or _validator_options(mtls, "join-token", "path")
    return s


async def _serve(settings: SentrySettings) -> int:
    server = SentryServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("sentry stopping")
    await server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sentry until SIGTERM/SIGINT. Returns the exit code (2: bad flags, 1: fatal)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = build_parser().parse_args(args)
        settings = settings_from_args(ns)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    setup_logging({"warning": "warn"}.get(ns.log_level, ns.log_level), ns.log_as_json, "sentry")
    try:
        return asyncio.run(_serve(settings))
    except (PydaprError, CredentialsError, OSError) as exc:
        log.error("fatal: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 0
