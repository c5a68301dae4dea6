"""Service-invocation access control (``spec.accessControl``), evaluated on the callee's sidecar.

Dapr's rules, pinned by tests (security spec 1.3): parse rules P1 to P8,
decisions R0 to R11, operation matching M1 to M6. pydapr's own decisions
(security spec 6):

1. an empty global ``defaultAction`` with policies absent or non-empty means
   deny, with a warning naming the file (Dapr's code; its docs say allow);
2. first match in insertion order, prefix semantics and a never-matching
   middle ``*`` are kept for parity; the loader warns about rules that are
   shadowed by an earlier one or can never match;
3. an HTTP callee and a request with no verb: the policy's own default, even
   empty (so deny), as in Dapr;
4. a verb that is not an upper-case HTTP verb or ``*`` stops start-up, naming
   the rule (``get`` would silently never match);
5. a caller SPIFFE id whose path is not exactly ``/ns/<ns>/<app>`` is denied,
   extra segments included (pydapr's CA never issues them).

The operation evaluated is the canonical method (:mod:`.method`); the ACL
itself normalises nothing (M6).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydapr.errors import ConfigError

__all__ = ["AccessControl", "AppPolicy", "OperationRule", "OperationTrie", "parse_access_control",
           "parse_spiffe_id", "HTTP_VERBS", "Decision"]

log = logging.getLogger("pydapr.acl")

HTTP_VERBS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT",
                        "TRACE"})
DEFAULT_TRUST_DOMAIN = "public"


def _allowed(action: str) -> bool:
    return action.lower() == "allow"  # P8: anything else, the empty string included, denies


@dataclass
class OperationRule:
    name: str
    verbs: dict[str, str] = field(default_factory=dict)  # verb (or "*") -> action; HTTP callees
    action: str = ""                                      # gRPC callees


class _Node:
    __slots__ = ("char", "rule", "children")

    def __init__(self, char: str, rule: OperationRule | None = None) -> None:
        self.char = char
        self.rule = rule
        self.children: list[_Node] = []


def _glob(target: str, pattern: str) -> bool:
    """``*`` in ``pattern`` matches any run of characters (possibly empty); nothing else is special."""
    tl, pl = len(target), len(pattern)
    row = [False] * (pl + 1)
    row[0] = True
    for j in range(1, pl + 1):
        row[j] = row[j - 1] and pattern[j - 1] == "*"
    for i in range(1, tl + 1):
        prev_diag, row[0] = row[0], False
        for j in range(1, pl + 1):
            cur = row[j]
            if pattern[j - 1] == "*":
                row[j] = row[j - 1] or cur
            else:
                row[j] = prev_diag and target[i - 1] == pattern[j - 1]
            prev_diag = cur
    return row[pl]


def _find(children: list[_Node], char: str, is_end: bool) -> _Node | None:
    """M1/M2: the first child, in insertion order, that matches the request segment."""
    for node in children:
        if node.char == char:
            return node
        if node.char == "/*":
            if is_end:
                return node
            continue
        if node.char == "/**":
            return node
        if _glob(char, node.char):
            return node
    return None


class OperationTrie:
    """Operation rules keyed by ``/``-separated segments, matched as Dapr's trie matches them."""

    def __init__(self) -> None:
        self.root = _Node("/")

    def put(self, operation: str, rule: OperationRule) -> None:
        parts = operation.split("/")
        node = self.root
        last = len(parts) - 1
        for index in range(1, len(parts)):
            char = "/" + parts[index]
            sub = next((n for n in node.children if n.char == char), None)
            if sub is None:
                sub = _Node(char, rule if index == last else None)
                node.children.append(sub)
                node = sub
            elif index == last:
                if sub.rule is None:  # the first rule for an operation wins
                    sub.rule = rule
            else:
                node = sub

    def search(self, operation: str) -> OperationRule | None:
        parts = operation.split("/")
        node: _Node | None = self.root
        last = len(parts) - 1
        for index in range(1, len(parts)):
            is_end = index == last
            char = "/" + parts[index]
            node = _find(node.children, char, is_end)  # type: ignore[union-attr]
            if node is None:
                return None
            if node.rule is not None:
                if not is_end and node.char.endswith("/*") and not node.char.endswith("/**"):
                    continue  # M3: a bare "*" keeps descending
                return node.rule  # M3: prefix semantics
            if is_end:
                star = _find(node.children, "/*", True)  # M4
                if star is not None and star.rule is not None:
                    return star.rule
        return None


@dataclass
class AppPolicy:
    app_id: str
    namespace: str
    trust_domain: str
    default_action: str
    operations: OperationTrie


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: which level decided: "none" (no ACL), "global", "app", "operation", "malformed-id"
    by: str


def parse_spiffe_id(spiffe: str) -> tuple[str, str, str] | None:
    """``(trust domain, namespace, app id)`` of ``spiffe://td/ns/<ns>/<app>``; None otherwise."""
    if not spiffe.startswith("spiffe://"):
        return None
    parts = spiffe.split("/")
    if len(parts) != 6 or parts[3] != "ns" or not parts[2] or not parts[4] or not parts[5]:
        return None
    return parts[2], parts[4], parts[5]


class AccessControl:
    """The parsed policy of this (callee) sidecar. ``check`` decides one incoming call."""

    def __init__(self, default_action: str, trust_domain: str,
                 policies: dict[tuple[str, str], AppPolicy], grpc: bool) -> None:
        self.default_action = default_action
        self.trust_domain = trust_domain
        self.policies = policies
        self.grpc = grpc

    def check(self, caller_id: str | None, operation: str, verb: str) -> Decision:
        """Decide a call.

        :param caller_id: the caller's SPIFFE id from the TLS session, None when unverified.
        :param operation: the canonical method (gRPC proxying: the full method name).
        :param verb: upper-case HTTP verb, or ``""`` when the call carries none.
        """
        action = self.default_action
        if caller_id is None:
            return Decision(_allowed(action), "global")            # R2
        parsed = parse_spiffe_id(caller_id)
        if parsed is None:
            return Decision(False, "malformed-id")                 # R1, decision 5
        trust_domain, namespace, app_id = parsed
        policy = self.policies.get((app_id, namespace))
        if policy is None or policy.trust_domain != trust_domain:
            return Decision(_allowed(action), "global")            # R3, R4
        by = "global"
        if policy.default_action:
            action, by = policy.default_action, "app"              # R5
        op = operation if operation.startswith("/") else "/" + operation
        if not self.grpc:
            op = op.lower()
        rule = policy.operations.search(op)
        if rule is None:
            return Decision(_allowed(action), by)                  # R6
        if self.grpc:
            return Decision(_allowed(rule.action), "operation")    # R7
        if not verb:
            return Decision(_allowed(policy.default_action), "app")  # R11
        if verb in rule.verbs:
            return Decision(_allowed(rule.verbs[verb]), "operation")  # R8
        if "*" in rule.verbs:
            return Decision(_allowed(rule.verbs["*"]), "operation")   # R9
        return Decision(_allowed(action), by)                      # R10


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{where}: must be a string")
    return str(value)


def parse_access_control(spec: Any, grpc: bool, source: str = "configuration"
                         ) -> AccessControl | None:
    """Parse ``spec.accessControl``; None when no ACL is configured (P1).

    :param grpc: the callee app speaks gRPC (operations stay case-sensitive, P6).
    :raises ConfigError: naming the file and rule on an invalid spec (P4, decision 4).
    """
    where = f"{source}: spec.accessControl"
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping")
    default = _text(spec.get("defaultAction"), f"{where}.defaultAction")
    trust_domain = _text(spec.get("trustDomain"), f"{where}.trustDomain")
    policies_raw = spec.get("policies")
    if policies_raw is not None and not isinstance(policies_raw, list):
        raise ConfigError(f"{where}.policies: must be a list")
    if not trust_domain and not default and not policies_raw:
        return None                                                   # P1
    if not default:                                                   # P2, decision 1
        if policies_raw is None or policies_raw:
            log.warning("%s: no defaultAction given: calls not matched by a policy are denied",
                        where)
            default = "deny"
        else:
            default = "allow"
    _warn_action(default, f"{where}.defaultAction")
    policies: dict[tuple[str, str], AppPolicy] = {}
    missing: list[str] = []
    for i, raw in enumerate(policies_raw or ()):
        here = f"{where}.policies[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{here}: must be a mapping")
        app_id = _text(raw.get("appId"), f"{here}.appId")
        td = _text(raw.get("trustDomain"), f"{here}.trustDomain")
        ns = _text(raw.get("namespace"), f"{here}.namespace")
        lacks = [n for n, v in (("appId", app_id), ("trustDomain", td), ("namespace", ns)) if not v]
        if lacks:                                                     # P4
            missing.append(f"policies[{i}] ({app_id or '?'}) lacks {', '.join(lacks)}")
            continue
        app_default = _text(raw.get("defaultAction"), f"{here}.defaultAction")
        if app_default:
            _warn_action(app_default, f"{here}.defaultAction")
        trie = _operations(raw.get("operations"), here, grpc)
        if (app_id, ns) in policies:                                  # P5
            log.warning("%s: a second policy for app %s in namespace %s replaces the first",
                        here, app_id, ns)
        policies[(app_id, ns)] = AppPolicy(app_id, ns, td, app_default, trie)
    if missing:
        raise ConfigError(f"{where}: every policy needs appId, trustDomain and namespace: "
                          + "; ".join(missing))
    return AccessControl(default, trust_domain or DEFAULT_TRUST_DOMAIN, policies, grpc)


def _warn_action(action: str, where: str) -> None:
    if action.lower() not in ("allow", "deny"):
        log.warning("%s: action %r is neither allow nor deny: it denies", where, action)


def _operations(raw: Any, where: str, grpc: bool) -> OperationTrie:
    trie = OperationTrie()
    if raw is None:
        return trie
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.operations: must be a list")
    for j, op in enumerate(raw):
        here = f"{where}.operations[{j}]"
        if not isinstance(op, dict) or not op.get("name"):
            raise ConfigError(f"{here}: each operation needs a 'name'")
        name = _text(op["name"], f"{here}.name")
        name = name if name.startswith("/") else "/" + name          # P6
        if not grpc:
            name = name.lower()
        verbs_raw = op.get("httpVerb") or []
        if not isinstance(verbs_raw, list):
            raise ConfigError(f"{here}.httpVerb: must be a list of verbs")
        action = _text(op.get("action"), f"{here}.action")
        _warn_action(action, f"{here}.action")
        rule = OperationRule(name, {}, action)
        for verb in verbs_raw:
            verb = _text(verb, f"{here}.httpVerb")
            if verb != "*" and verb not in HTTP_VERBS:                # decision 4
                hint = f" (write {verb.upper()!r})" if verb.upper() in HTTP_VERBS else ""
                raise ConfigError(f"{here}.httpVerb: {verb!r} can never match a request{hint}; "
                                  "use upper-case HTTP verbs or '*'")
            rule.verbs[verb] = action                                 # P7
        _lint(trie, rule, here)
        trie.put(name, rule)
    return trie


def _lint(trie: OperationTrie, rule: OperationRule, where: str) -> None:
    """Decision 2: warn about rules that can never decide anything."""
    segments = rule.name.split("/")[1:]
    if "*" in segments[:-1]:
        log.warning("%s: operation %r never matches: a '*' segment matches only at the end of a "
                    "request (use '**')", where, rule.name)
        return
    earlier = trie.search(rule.name)
    if earlier is not None and earlier.name != rule.name:
        log.warning("%s: operation %r is shadowed by the earlier rule %r (the first matching rule "
                    "wins)", where, rule.name, earlier.name)
