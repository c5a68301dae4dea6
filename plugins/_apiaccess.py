"""API allow and deny lists (Configuration ``spec.api``), for HTTP routes and gRPC methods.

Matching follows daprd (spec 9.2): a deny rule wins; when an allow list is
given only what it names remains; health endpoints are always allowed. An
HTTP rule matches a route by group (``{name: state, version: v1}``) or, the
legacy form, when the route's URL version equals the rule's version and the
route (after the version) starts with the rule's name (``{name: state,
version: v1.0}``). A gRPC rule names ``<name>.<version>`` of the table below.

Stricter than daprd, because a rule that silently matches nothing hides a
hole: a rule without a protocol (daprd ignores it, so a deny rule does
nothing and an allow list can vanish), with a protocol other than http/grpc,
or a gRPC rule naming no known API, stops start-up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydapr.errors import ConfigError

if TYPE_CHECKING:
    from pydapr.registry import Route
    from pydapr.resources import APIRule, Configuration

__all__ = ["GRPC_ENDPOINTS", "APIAccess", "route_parts", "INVOKE_FALLBACK"]

#: gRPC ``name.version`` -> the ``dapr.proto.runtime.v1.Dapr`` RPCs it covers (daprd's table)
GRPC_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "invoke.v1": ("InvokeService",),
    "state.v1": ("GetState", "GetBulkState", "SaveState", "DeleteState", "DeleteBulkState",
                 "ExecuteStateTransaction"),
    "state.v1alpha1": ("QueryStateAlpha1",),
    "publish.v1": ("PublishEvent", "BulkPublishEvent"),
    "publish.v1alpha1": ("BulkPublishEventAlpha1",),
    "bindings.v1": ("InvokeBinding",),
    "secrets.v1": ("GetSecret", "GetBulkSecret"),
    "actors.v1": ("RegisterActorTimer", "UnregisterActorTimer", "GetActorTimer", "ListActorTimers",
                  "RegisterActorReminder",
                  "GetActorReminder", "UnregisterActorReminder", "UnregisterActorRemindersByType",
                  "ListActorReminders", "GetActorState", "ExecuteActorStateTransaction",
                  "InvokeActor"),
    "actors.v1alpha1": ("SubscribeActorEventsAlpha1",),
    "metadata.v1": ("GetMetadata", "SetMetadata"),
    "configuration.v1alpha1": ("GetConfigurationAlpha1", "SubscribeConfigurationAlpha1",
                               "UnsubscribeConfigurationAlpha1"),
    "configuration.v1": ("GetConfiguration", "SubscribeConfiguration", "UnsubscribeConfiguration"),
    "lock.v1alpha1": ("TryLockAlpha1",),
    "unlock.v1alpha1": ("UnlockAlpha1",),
    "subtlecrypto.v1alpha1": tuple(f"Subtle{op}Alpha1" for op in (
        "GetKey", "Encrypt", "Decrypt", "Sign", "Verify", "WrapKey", "UnwrapKey")),
    "crypto.v1alpha1": ("EncryptAlpha1", "DecryptAlpha1"),
    "workflows.v1alpha1": tuple(f"{op}WorkflowAlpha1" for op in (
        "Start", "Get", "Terminate", "RaiseEvent", "Purge", "Pause", "Resume")),
    "workflows.v1beta1": tuple(f"{op}WorkflowBeta1" for op in (
        "Start", "Get", "Terminate", "RaiseEvent", "Purge", "Pause", "Resume")),
    "jobs.v1alpha1": ("ScheduleJobAlpha1", "DeleteJobAlpha1", "GetJobAlpha1",
                      "DeleteJobsByPrefixAlpha1", "ListJobsAlpha1"),
    "jobs.v1": ("ScheduleJob", "DeleteJob", "GetJob", "DeleteJobsByPrefix", "ListJobs"),
    "shutdown.v1": ("Shutdown",),
    "subscribe.v1alpha1": ("SubscribeTopicEventsAlpha1",),
    "conversation.v1alpha1": ("ConverseAlpha1",),
    "conversation.v1alpha2": ("ConverseAlpha2",),
}

#: what the invoke fallback (unmatched paths, the ``dapr-app-id`` header form) counts as
INVOKE_FALLBACK = ("v1.0", "invoke/{id}/method/{method*}", "invoke")


def route_parts(route: Route) -> tuple[str, str, str]:
    """``(url version, route after the version, API group)`` of a building-block route."""
    head, _, rest = route.pattern.strip("/").partition("/")
    if not head.startswith("v"):
        return "", route.pattern.strip("/"), route.api
    return head, rest, route.api


def _group_version(url_version: str) -> str:
    """``v1.0`` -> ``v1``, ``v1.0-alpha1`` -> ``v1alpha1`` (daprd's endpoint group versions)."""
    base, _, stage = url_version.partition("-")
    return base.split(".", 1)[0] + stage


def _http_match(parts: tuple[str, str, str], rule: APIRule) -> bool:
    version, rest, group = parts
    if group and group == rule.name and _group_version(version) == rule.version:
        return True
    return bool(version) and version == rule.version and rest.startswith(rule.name)


@dataclass(frozen=True)
class APIAccess:
    """The parsed ``spec.api`` lists, split by protocol."""

    http_allowed: tuple[APIRule, ...] = ()
    http_denied: tuple[APIRule, ...] = ()
    grpc_allowed: frozenset[str] | None = None  # None: no gRPC allow list
    grpc_denied: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Configuration) -> APIAccess:
        """:raises ConfigError: on a rule that could never apply (see the module docstring)."""
        where = config.source or "configuration"
        lists: dict[str, list] = {"http_allowed": [], "http_denied": [], "grpc_allowed": [],
                                  "grpc_denied": []}
        for field, rules in (("allowed", config.api_allowed), ("denied", config.api_denied)):
            for i, rule in enumerate(rules):
                here = f"{where}: field spec.api.{field}[{i}] ({rule.name} {rule.version})"
                protocol = rule.protocol.lower()
                if protocol not in ("http", "grpc"):
                    raise ConfigError(f"{here}: 'protocol' must be http or grpc, got "
                                      f"{rule.protocol!r} (daprd would ignore this rule)")
                if not rule.version:
                    raise ConfigError(f"{here}: 'version' is required (v1.0 or v1 for HTTP, "
                                      "v1, v1alpha1... for gRPC)")
                if protocol == "grpc":
                    key = f"{rule.name}.{rule.version}"
                    if key not in GRPC_ENDPOINTS:
                        raise ConfigError(f"{here}: no gRPC API is named {key!r}; known: "
                                          f"{', '.join(sorted(GRPC_ENDPOINTS))}")
                    lists[f"grpc_{field}"].extend(GRPC_ENDPOINTS[key])
                else:
                    lists[f"http_{field}"].append(rule)
        return cls(tuple(lists["http_allowed"]), tuple(lists["http_denied"]),
                   frozenset(lists["grpc_allowed"]) or None,  # every gRPC rule names some RPC
                   frozenset(lists["grpc_denied"]))

    @property
    def has_http_rules(self) -> bool:
        return bool(self.http_allowed or self.http_denied)

    @property
    def has_grpc_rules(self) -> bool:
        return self.grpc_allowed is not None or bool(self.grpc_denied)

    def http_allows(self, parts: tuple[str, str, str]) -> bool:
        if parts[2] == "healthz":
            return True
        if any(_http_match(parts, r) for r in self.http_denied):
            return False
        return not self.http_allowed or any(_http_match(parts, r) for r in self.http_allowed)

    def http_route_allowed(self, route: Route) -> bool:
        """``Runtime.route_filter``: a disallowed route is simply not registered."""
        return self.http_allows(route_parts(route))

    def unmatched_http_rules(self, routes: list[Route]) -> list[APIRule]:
        """HTTP rules that match none of ``routes`` (a typo, or a block not installed)."""
        parts = [route_parts(r) for r in routes] + [INVOKE_FALLBACK]
        return [rule for rule in (*self.http_allowed, *self.http_denied)
                if not any(_http_match(p, rule) for p in parts)]

    def grpc_allows(self, rpc: str) -> bool:
        if rpc in self.grpc_denied:
            return False
        return self.grpc_allowed is None or rpc in self.grpc_allowed
