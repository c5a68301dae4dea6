"""daprd's flags and environment variables -> :class:`Options`.

Precedence is flag, then environment, then default, decided in :func:`parse`
alone. Dapr's single-dash long flags (``-app-id``) are accepted as
``--app-id``. An unknown flag stops start-up with a message naming it.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import ConfigError

__all__ = ["Options", "parse", "build_parser"]

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?|[kmg]i?)?[bB]?\s*$")


def _size(text: str, unit: int) -> int:
    """``4`` (in ``unit`` bytes), ``4Mi``, ``512Ki``, ``1G``."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}")
    number, suffix = int(m.group(1)), (m.group(2) or "").upper().rstrip("I")
    return number * {"": unit, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix]


@dataclass
class Options:
    app_id: str = ""
    app_port: int | None = None
    app_protocol: str = "http"
    app_channel_address: str = "127.0.0.1"
    app_max_concurrency: int = -1
    enable_app_health_check: bool = False
    app_health_check_path: str = "/healthz"
    app_health_probe_interval: float = 5.0
    app_health_probe_timeout: float = 0.5
    app_health_threshold: int = 3
    dapr_http_port: int = 3500
    dapr_grpc_port: int = 50001
    dapr_internal_grpc_port: int | None = None
    dapr_internal_grpc_listen_address: str = ""
    dapr_public_port: int | None = None
    dapr_public_listen_address: str = "127.0.0.1"
    dapr_listen_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    unix_domain_socket: str = ""  # a directory: the HTTP and gRPC APIs listen on sockets there
    resources_paths: list[str] = field(default_factory=list)
    config: list[str] = field(default_factory=list)
    enable_mtls: bool = False
    sentry_address: str = ""
    control_plane_trust_domain: str = "localhost"
    control_plane_namespace: str = "default"
    placement_host_address: list[str] = field(default_factory=list)
    scheduler_host_address: list[str] = field(default_factory=list)
    max_body_size: int = 4 << 20
    read_buffer_size: int = 4 << 10
    graceful_shutdown_seconds: float = 5.0
    log_level: str = "info"
    log_as_json: bool = False
    enable_metrics: bool = True
    metrics_port: int = 9090
    metrics_listen_address: str = "127.0.0.1"
    enable_api_logging: bool | None = None
    allowed_origins: str = ""
    disable_init_endpoints: list[str] = field(default_factory=list)
    mode: str = "standalone"
    # environment
    namespace: str = "default"
    api_token: str = field(default="", repr=False)
    app_api_token: str = field(default="", repr=False)
    trust_anchors: str = field(default="", repr=False)
    cert_chain: str = field(default="", repr=False)
    cert_key: str = field(default="", repr=False)
    trust_anchors_file: str = ""
    sentry_token_file: str = ""

    def api_socket(self, api: str) -> str:
        """The Unix socket of the ``http`` or ``grpc`` API, named as daprd names it."""
        return os.path.join(self.unix_domain_socket, f"dapr-{self.app_id}-{api}.socket")


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "t"):
        return True
    if low in ("false", "0", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"pydaprd: {message} (see pydaprd --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pydaprd", description="A Dapr-compatible sidecar (daprd's flags).",
                allow_abbrev=False)
    a = p.add_argument
    flag = {"nargs": "?", "const": True, "type": _bool}
    a("--app-id", default="")
    a("--app-port", type=int)
    a("--app-protocol", default="http", choices=["http", "https", "grpc", "grpcs", "h2c"])
    a("--app-channel-address", default="127.0.0.1")
    a("--app-ssl", default=False, **flag)
    a("--app-max-concurrency", type=int, default=-1)
    a("--enable-app-health-check", default=False, **flag)
    a("--app-health-check-path", default="/healthz")
    a("--app-health-probe-interval", type=float, default=5.0)
    a("--app-health-probe-timeout", type=float, default=500.0, help="milliseconds")
    a("--app-health-threshold", type=int, default=3)
    a("--app-binding-options-timeout", default="3s")
    a("--dapr-http-port", type=int, default=3500)
    a("--dapr-grpc-port", type=int, default=50001)
    a("--dapr-internal-grpc-port", type=int)
    a("--dapr-internal-grpc-listen-address", default="")
    a("--dapr-public-port", type=int)
    a("--dapr-public-listen-address", default="127.0.0.1")
    a("--dapr-listen-addresses", type=_csv, default=["127.0.0.1"])
    a("--resources-path", action="append", default=[])
    a("--components-path", default="")
    a("--config", action="append", default=[])
    a("--enable-mtls", default=False, **flag)
    a("--sentry-address", default="")
    a("--trust-anchors-file", default="", help="PEM trust anchors, watched (DAPR_TRUST_ANCHORS wins)")
    a("--control-plane-address", default="")
    a("--control-plane-trust-domain", default=None)
    a("--control-plane-namespace", default=None)
    a("--sentry-request-jwt-audiences", default="")
    a("--placement-host-address", type=_csv, default=[])
    a("--scheduler-host-address", type=_csv, default=None)
    a("--scheduler-job-streams", type=int, default=3)
    a("--actors-disseminate-timeout", default="30s")
    a("--dapr-http-max-request-size", type=int, default=4, help="megabytes")
    a("--max-body-size", default="")
    a("--dapr-http-read-buffer-size", type=int, default=4, help="kilobytes")
    a("--read-buffer-size", default="")
    a("--unix-domain-socket", default="",
      help="directory for the API's Unix sockets (dapr-<app-id>-http.socket and "
           "dapr-<app-id>-grpc.socket), served instead of the TCP ports")
    a("--dapr-graceful-shutdown-seconds", type=float, default=5.0)
    a("--dapr-block-shutdown-duration", default="")
    a("--enable-api-logging", default=None, **flag)
    a("--log-level", default="info", choices=["debug", "info", "warn", "warning", "error", "fatal"])
    a("--log-as-json", default=False, **flag)
    a("--enable-metrics", default=True, **flag)
    a("--metrics-port", type=int, default=9090)
    a("--metrics-listen-address", default="127.0.0.1")
    a("--enable-profiling", default=False, **flag)
    a("--profile-port", type=int, default=7777)
    a("--allowed-origins", default="")
    a("--disable-builtin-k8s-secret-store", default=False, **flag)
    a("--disable-init-endpoints", type=_csv, default=[])
    a("--hot-reload-reconcile-interval", default="0")
    a("--wait", default=False, **flag)
    a("--mode", default="standalone", choices=["standalone", "kubernetes"])
    a("--version", action="store_true")
    a("--build-info", action="store_true")
    return p


def _normalise(argv: Sequence[str]) -> list[str]:
    """Dapr accepts ``-flag`` for long flags; argparse wants ``--flag``."""
    return [f"-{x}" if x.startswith("-") and not x.startswith("--") and len(x) > 2 else x
            for x in argv]


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[Options, argparse.Namespace]:
    """Flags and environment -> Options. :raises ConfigError: naming a bad flag or value."""
    env = os.environ if env is None else env
    ns = build_parser().parse_args(_normalise(argv))
    if ns.version or ns.build_info:
        return Options(), ns
    if not ns.app_id:
        raise ConfigError("pydaprd: --app-id is required")
    if "." in ns.app_id or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", ns.app_id):
        raise ConfigError(f"pydaprd: invalid --app-id {ns.app_id!r}: use letters, digits, '-' and '_' "
                          "(no dots)")
    try:
        max_body = _size(ns.max_body_size, 1) if ns.max_body_size else ns.dapr_http_max_request_size << 20
        read_buf = _size(ns.read_buffer_size, 1) if ns.read_buffer_size else ns.dapr_http_read_buffer_size << 10
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"pydaprd: {exc}") from None
    resources = list(ns.resources_path) or ([ns.components_path] if ns.components_path else [])
    opts = Options(
        app_id=ns.app_id, app_port=ns.app_port,
        app_protocol="https" if ns.app_ssl and ns.app_protocol == "http" else ns.app_protocol,
        app_channel_address=ns.app_channel_address, app_max_concurrency=ns.app_max_concurrency,
        enable_app_health_check=ns.enable_app_health_check,
        app_health_check_path=ns.app_health_check_path,
        app_health_probe_interval=ns.app_health_probe_interval,
        app_health_probe_timeout=ns.app_health_probe_timeout / 1000.0,
        app_health_threshold=ns.app_health_threshold,
        dapr_http_port=ns.dapr_http_port, dapr_grpc_port=ns.dapr_grpc_port,
        dapr_internal_grpc_port=ns.dapr_internal_grpc_port,
        dapr_internal_grpc_listen_address=ns.dapr_internal_grpc_listen_address,
        dapr_public_port=ns.dapr_public_port, dapr_public_listen_address=ns.dapr_public_listen_address,
        dapr_listen_addresses=ns.dapr_listen_addresses or ["127.0.0.1"],
        unix_domain_socket=ns.unix_domain_socket,
        resources_paths=resources, config=list(ns.config),
        enable_mtls=ns.enable_mtls, sentry_address=ns.sentry_address,
        control_plane_trust_domain=(ns.control_plane_trust_domain
                                    or env.get("DAPR_CONTROLPLANE_TRUST_DOMAIN") or "localhost"),
        control_plane_namespace=(ns.control_plane_namespace
                                 or env.get("DAPR_CONTROLPLANE_NAMESPACE") or "default"),
        placement_host_address=ns.placement_host_address,
        scheduler_host_address=(ns.scheduler_host_address if ns.scheduler_host_address is not None
                                else _csv(env.get("DAPR_SCHEDULER_HOST_ADDRESS_DNS_A", ""))),
        max_body_size=max_body, read_buffer_size=read_buf,
        graceful_shutdown_seconds=ns.dapr_graceful_shutdown_seconds,
        log_level={"warning": "warn"}.get(ns.log_level, ns.log_level), log_as_json=ns.log_as_json,
        enable_metrics=ns.enable_metrics, metrics_port=ns.metrics_port,
        metrics_listen_address=ns.metrics_listen_address, enable_api_logging=ns.enable_api_logging,
        allowed_origins=ns.allowed_origins, disable_init_endpoints=ns.disable_init_endpoints,
        mode=ns.mode,
        namespace=env.get("NAMESPACE") or "default",
        api_token=env.get("DAPR_API_TOKEN", ""), app_api_token=env.get("APP_API_TOKEN", ""),
        trust_anchors=env.get("DAPR_TRUST_ANCHORS", ""), cert_chain=env.get("DAPR_CERT_CHAIN", ""),
        cert_key=env.get("DAPR_CERT_KEY", ""), trust_anchors_file=ns.trust_anchors_file,
        sentry_token_file=env.get("DAPR_SENTRY_TOKEN_FILE", ""),
    )
    if opts.unix_domain_socket and not os.path.isdir(opts.unix_domain_socket):
        raise ConfigError(f"pydaprd: --unix-domain-socket {opts.unix_domain_socket!r} is not a "
                          "directory (it names the folder the API sockets are created in)")
    return opts, ns
