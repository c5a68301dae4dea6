"""Resource YAML (Component, Subscription, Resiliency, HTTPEndpoint, Configuration) -> typed objects.

Follows Dapr's self-hosted loading rules (spec 9.0): every ``*.yaml``/``*.yml``
in each resources folder, several documents per file, ``kind`` decides the
type, ``scopes`` and ``metadata.namespace`` decide whether this app loads it.
Errors name the file, the document and the field. Stricter than Dapr: a
manifest with a namespace loads only into a sidecar of that namespace, the
sidecar's namespace being ``default`` when ``NAMESPACE`` is unset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import yaml

from .durations import parse_duration
from .errors import ConfigError

__all__ = [
    "MetadataItem", "Resource", "Component", "Subscription", "Resiliency", "HTTPEndpoint",
    "Configuration", "APIRule", "PipelineHandler", "Resources", "load_resources",
    "load_configuration", "resource_files", "DEFAULT_RESOURCES",
]

#: The embedded default used with no --resources-path and no ~/.pydapr/components.
DEFAULT_RESOURCES = Path(__file__).with_name("defaults")


@dataclass(frozen=True)
class MetadataItem:
    name: str
    value: str | None = None
    secret_ref: tuple[str, str] | None = None  # (secret name, key)
    env_ref: str | None = None


@dataclass
class Resource:
    kind: str
    api_version: str
    name: str
    namespace: str
    scopes: list[str]
    source: str  # "file.yaml#2" (1-based document index)
    raw: dict[str, Any] = field(repr=False)


@dataclass
class Component(Resource):
    type: str = ""
    version: str = "v1"
    init_timeout: float = 5.0
    ignore_errors: bool = False
    metadata: list[MetadataItem] = field(default_factory=list)
    secret_store: str = ""  # auth.secretStore

    @cached_property  # read on every component lookup
    def kind_name(self) -> str:
        return self.type.split(".", 1)[0]


@dataclass
class Subscription(Resource):
    pubsubname: str = ""
    topic: str = ""
    rules: list[tuple[str, str]] = field(default_factory=list)  # (CEL match, path)
    default_route: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    dead_letter_topic: str = ""
    bulk_subscribe: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resiliency(Resource):
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class HTTPEndpoint(Resource):
    base_url: str = ""
    headers: list[MetadataItem] = field(default_factory=list)
    client_tls: dict[str, Any] = field(default_factory=dict)
    secret_store: str = ""


@dataclass(frozen=True)
class APIRule:
    name: str
    version: str
    protocol: str


@dataclass(frozen=True)
class PipelineHandler:
    name: str
    type: str
    version: str = "v1"


@dataclass
class Configuration:
    """A ``kind: Configuration`` file (``--config``); the parts the kernel reads are typed."""

    name: str = ""
    source: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    features: dict[str, bool] = field(default_factory=dict)
    api_allowed: list[APIRule] = field(default_factory=list)
    api_denied: list[APIRule] = field(default_factory=list)
    http_pipeline: list[PipelineHandler] = field(default_factory=list)
    app_http_pipeline: list[PipelineHandler] = field(default_factory=list)
    components_deny: list[str] = field(default_factory=list)

    def section(self, name: str) -> dict[str, Any]:
        value = self.spec.get(name) or {}
        return value if isinstance(value, dict) else {}


@dataclass
class Resources:
    components: list[Component] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    resiliencies: list[Resiliency] = field(default_factory=list)
    http_endpoints: list[HTTPEndpoint] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a manifest was not loaded here

    def all(self) -> list[Resource]:
        return [*self.components, *self.subscriptions, *self.resiliencies, *self.http_endpoints]


# ------------------------------------------------------------------------------ parsing


class _Doc:
    """One YAML document, with error messages that name the file, document and field."""

    def __init__(self, doc: dict[str, Any], where: str) -> None:
        self.doc = doc
        self.where = where

    def fail(self, path: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: field {path}: {why}")

    def get(self, path: str, typ: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                if required:
                    raise self.fail(path, "is required")
                return default
            node = node[part]
        if not isinstance(node, typ):
            names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise self.fail(path, f"must be a {names}, got {type(node).__name__}")
        return node

    def str_list(self, path: str) -> list[str]:
        value = self.get(path, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(path, "must be a list of strings")
        return list(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import orjson
        return orjson.dumps(value).decode()
    return str(value)


def _metadata_items(d: _Doc, path: str) -> list[MetadataItem]:
    items: list[MetadataItem] = []
    seen: set[str] = set()
    for i, entry in enumerate(d.get(path, list, [])):
        here = f"{path}[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise d.fail(here, "each entry needs a 'name'")
        name = entry["name"]
        if name.lower() in seen:
            raise d.fail(f"{here}.name", f"{name!r} is given twice")
        seen.add(name.lower())
        ref = entry.get("secretKeyRef")
        env = entry.get("envRef")
        if ref is not None:
            if not isinstance(ref, dict) or not ref.get("name"):
                raise d.fail(f"{here}.secretKeyRef", "needs a 'name'")
            items.append(MetadataItem(name, secret_ref=(str(ref["name"]), str(ref.get("key") or ref["name"]))))
        elif entry.get("value") is not None:
            items.append(MetadataItem(name, value=_scalar(entry["value"])))
        elif env is not None:
            items.append(MetadataItem(name, env_ref=str(env)))
        else:
            items.append(MetadataItem(name, value=""))
    return items


def _base(d: _Doc) -> dict[str, Any]:
    name = d.get("metadata.name", str, required=True)
    if not name.strip():
        raise d.fail("metadata.name", "must not be empty")
    return dict(kind=d.doc["kind"], api_version=str(d.doc.get("apiVersion", "")), name=name,
                namespace=d.get("metadata.namespace", str, ""), scopes=d.str_list("scopes"),
                source=d.where, raw=d.doc)


def _component(d: _Doc) -> Component:
    ctype = d.get("spec.type", str, required=True)
    if "." not in ctype:
        raise d.fail("spec.type", f"{ctype!r} is not of the form <kind>.<name> (e.g. state.redis)")
    timeout = d.get("spec.initTimeout", (str, int, float), "5s")
    try:
        init_timeout = parse_duration(timeout)
    except ValueError:
        init_timeout = 5.0  # Dapr: unparseable => default
    return Component(**_base(d), type=ctype, version=str(d.get("spec.version", (str, int), "v1")),
                     init_timeout=init_timeout,
                     ignore_errors=bool(d.get("spec.ignoreErrors", (bool, str), False) in (True, "true")),
                     metadata=_metadata_items(d, "spec.metadata"),
                     secret_store=d.get("auth.secretStore", str, ""))


def _subscription(d: _Doc) -> Subscription:
    sub = Subscription(**_base(d), pubsubname=d.get("spec.pubsubname", str, required=True),
                       topic=d.get("spec.topic", str, required=True),
                       dead_letter_topic=d.get("spec.deadLetterTopic", str, ""),
                       metadata={k: _scalar(v) for k, v in d.get("spec.metadata", dict, {}).items()},
                       bulk_subscribe=d.get("spec.bulkSubscribe", dict, {}))
    # v2alpha1 has spec.routes; v1alpha1 (and documents without apiVersion) may use spec.route
    sub.default_route = d.get("spec.routes.default", str, "") or d.get("spec.route", str, "")
    for i, rule in enumerate(d.get("spec.routes.rules", list, [])):
        if not isinstance(rule, dict) or not isinstance(rule.get("path"), str):
            raise d.fail(f"spec.routes.rules[{i}]", "needs 'match' and 'path'")
        sub.rules.append((str(rule.get("match", "")), rule["path"]))
    if not sub.default_route and not sub.rules:
        raise d.fail("spec.routes", "a subscription needs a route (spec.routes.default or rules)")
    return sub


def _http_endpoint(d: _Doc) -> HTTPEndpoint:
    return HTTPEndpoint(**_base(d), base_url=d.get("spec.baseUrl", str, required=True),
                        headers=_metadata_items(d, "spec.headers"),
                        client_tls=d.get("spec.clientTLS", dict, {}),
                        secret_store=d.get("auth.secretStore", str, ""))


def _resiliency(d: _Doc) -> Resiliency:
    return Resiliency(**_base(d), spec=d.get("spec", dict, {}))


_BUILDERS = {"Component": _component, "Subscription": _subscription,
             "HTTPEndpoint": _http_endpoint, "Resiliency": _resiliency}


def resource_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        folder = Path(p).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"resources path {folder} is not a folder")
        files += sorted(f for f in folder.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
    return files


def _documents(path: Path) -> list[tuple[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return [(f"{path}#{i}", doc) for i, doc in enumerate(docs, 1) if doc is not None]


def load_resources(paths: Iterable[str | os.PathLike], app_id: str,
                   namespace: str = "default") -> Resources:
    """Read every resource in ``paths`` that this app (id, namespace) should load.

    :raises ConfigError: naming file, document and field on the first invalid manifest,
        or naming both places on a duplicate definition.
    """
    out = Resources()
    seen: dict[tuple[str, str], str] = {}
    for path in resource_files(paths):
        for where, doc in _documents(path):
            if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
                raise ConfigError(f"{where}: field kind: every document needs a 'kind'")
            builder = _BUILDERS.get(doc["kind"])
            if builder is None:
                if doc["kind"] == "Configuration":
                    out.skipped.append(f"{where}: Configuration is read from --config, not here")
                    continue
                raise ConfigError(f"{where}: field kind: unknown kind {doc['kind']!r} "
                                  f"(expected one of {', '.join(_BUILDERS)})")
            res = builder(_Doc(doc, where))
            if res.namespace and res.namespace != namespace:
                out.skipped.append(f"{where}: namespace {res.namespace!r} is not {namespace!r}")
                continue
            if res.scopes and app_id not in res.scopes:
                out.skipped.append(f"{where}: {res.name} is scoped to {res.scopes}, not {app_id!r}")
                continue
            key = (res.kind, res.name)
            if key in seen:
                raise ConfigError(f"{where}: duplicate definition of {res.kind} {res.name!r} "
                                  f"(first defined in {seen[key]})")
            seen[key] = where
            {"Component": out.components, "Subscription": out.subscriptions,
             "Resiliency": out.resiliencies, "HTTPEndpoint": out.http_endpoints}[res.kind].append(res)
    return out


def _rules(d: _Doc, path: str) -> list[APIRule]:
    rules = []
    for i, r in enumerate(d.get(path, list, [])):
        if not isinstance(r, dict) or not r.get("name"):
            raise d.fail(f"{path}[{i}]", "each rule needs 'name' (and 'version', 'protocol')")
        rules.append(APIRule(str(r["name"]), str(r.get("version", "")), str(r.get("protocol", ""))))
    return rules


def _handlers(d: _Doc, path: str) -> list[PipelineHandler]:
    out = []
    for i, h in enumerate(d.get(path, list, [])):
        if not isinstance(h, dict) or not h.get("name") or not h.get("type"):
            raise d.fail(f"{path}[{i}]", "each handler needs 'name' and 'type'")
        out.append(PipelineHandler(str(h["name"]), str(h["type"]), str(h.get("version") or "v1")))
    return out


def load_configuration(files: Iterable[str | os.PathLike]) -> Configuration:
    """Read ``--config`` files; later files override earlier ones section by section."""
    spec: dict[str, Any] = {}
    name, source = "", ""
    for f in files:
        docs = [(w, doc) for w, doc in _documents(Path(f).expanduser())
                if isinstance(doc, dict) and doc.get("kind") == "Configuration"]
        if not docs:
            raise ConfigError(f"{f}: field kind: no 'kind: Configuration' document found")
        for where, doc in docs:
            d = _Doc(doc, where)
            name, source = d.get("metadata.name", str, ""), where
            spec.update(d.get("spec", dict, {}))
    d = _Doc({"spec": spec}, source or "configuration")
    features = {}
    for i, feat in enumerate(d.get("spec.features", list, [])):
        if not isinstance(feat, dict) or not feat.get("name"):
            raise d.fail(f"spec.features[{i}]", "each feature needs a 'name'")
        features[str(feat["name"])] = bool(feat.get("enabled", False))
    deny = d.str_list("spec.components.deny")
    if "metrics" in spec and "metric" not in spec:
        spec["metric"] = spec["metrics"]
    return Configuration(name=name, source=source, spec=spec, features=features,
                         api_allowed=_rules(d, "spec.api.allowed"),
                         api_denied=_rules(d, "spec.api.denied"),
                         http_pipeline=_handlers(d, "spec.httpPipeline.handlers"),
                         app_http_pipeline=_handlers(d, "spec.appHttpPipeline.handlers"),
                         components_deny=deny)
