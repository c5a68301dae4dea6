"""Resource YAML loading: typed objects, scopes, namespaces, and errors naming file and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from pydapr.errors import ConfigError
from pydapr.resources import load_configuration, load_resources

GOOD = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.redis
  version: v1
  initTimeout: 2s
  metadata:
    - {name: redisHost, value: "localhost:6379"}
    - {name: redisPassword, secretKeyRef: {name: redis-secret, key: password}}
    - {name: enableTLS, value: false}
    - {name: fromEnv, envRef: MY_VAR}
auth: {secretStore: local}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders-sub}
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules: [{match: 'event.type == "x"', path: /x}]
    default: /orders
  deadLetterTopic: dead
scopes: [app1]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: legacy}
spec: {pubsubname: pubsub, topic: t, route: /t}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: ext}
spec: {baseUrl: "http://127.0.0.1:1"}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec: {policies: {timeouts: {general: 5s}}}
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_multi_document_file_is_typed(tmp_path):
    res = load_resources([write(tmp_path, GOOD)], "app1")
    (comp,) = res.components
    assert (comp.name, comp.type, comp.version, comp.init_timeout) == ("statestore", "state.redis", "v1", 2.0)
    items = {m.name: m for m in comp.metadata}
    assert items["redisHost"].value == "localhost:6379"
    assert items["enableTLS"].value == "false"
    assert items["redisPassword"].secret_ref == ("redis-secret", "password")
    assert items["fromEnv"].env_ref == "MY_VAR"
    assert comp.secret_store == "local"
    sub, legacy = res.subscriptions
    assert sub.rules == [('event.type == "x"', "/x")] and sub.default_route == "/orders"
    assert sub.dead_letter_topic == "dead"
    assert legacy.default_route == "/t"
    assert res.http_endpoints[0].base_url == "http://127.0.0.1:1"
    assert res.resiliencies[0].spec["policies"]["timeouts"]["general"] == "5s"


def test_scopes_exclude_other_apps(tmp_path):
    res = load_resources([write(tmp_path, GOOD)], "other")
    assert [s.name for s in res.subscriptions] == ["legacy"]
    assert any("scoped" in why for why in res.skipped)


def test_namespace_must_match_the_sidecars(tmp_path):
    doc = ("kind: Component\nmetadata: {name: s, namespace: prod}\n"
           "spec: {type: state.in-memory, version: v1}\n")
    assert load_resources([write(tmp_path, doc)], "a", "default").components == []
    assert len(load_resources([tmp_path], "a", "prod").components) == 1


def test_several_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.yml").write_text("kind: Component\nmetadata: {name: one}\nspec: {type: state.x}\n")
    (b / "y.yaml").write_text("kind: Component\nmetadata: {name: two}\nspec: {type: state.x}\n")
    (b / "notes.txt").write_text("ignored")
    assert [c.name for c in load_resources([a, b], "app").components] == ["one", "two"]


@pytest.mark.parametrize("doc,needle", [
    ("kind: Component\nmetadata: {name: s}\nspec: {version: v1}\n", "#1: field spec.type: is required"),
    ("kind: Component\nmetadata: {name: s}\nspec: {type: redis}\n", "field spec.type"),
    ("kind: Component\nmetadata: {name: s}\nspec: {type: state.x, metadata: [{value: 1}]}\n",
     "field spec.metadata[0]"),
    ("kind: Component\nmetadata: {name: s}\nspec: {type: [1]}\n", "field spec.type: must be a str"),
    ("kind: Widget\nmetadata: {name: s}\n", "field kind: unknown kind 'Widget'"),
    ("metadata: {name: s}\n", "field kind"),
    ("kind: Component\nspec: {type: state.x}\n", "field metadata.name: is required"),
    ("kind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: t}\n", "field spec.routes"),
    ("kind: Component\nmetadata: {name: s}\nspec: {type: state.x}\n---\n"
     "kind: Component\nmetadata: {name: s}\nspec: {type: state.y}\n", "duplicate definition"),
    ("kind: Component\n  metadata: [\n", "not valid YAML"),
])
def test_malformed_resources_name_file_document_and_field(tmp_path, doc, needle):
    path = write(tmp_path, doc, "bad.yaml")
    with pytest.raises(ConfigError) as ei:
        load_resources([path], "app")
    assert "bad.yaml" in str(ei.value) and needle in str(ei.value)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        load_resources([tmp_path / "nope"], "a")


def test_configuration_typed_parts(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
kind: Configuration
metadata: {name: appconfig}
spec:
  features: [{name: HotReload, enabled: true}]
  api:
    allowed: [{name: state, version: v1.0, protocol: http}]
  httpPipeline:
    handlers: [{name: auth, type: middleware.http.bearer}]
  components: {deny: [bindings.smtp]}
  accessControl: {defaultAction: deny}
""")
    c = load_configuration([cfg])
    assert c.name == "appconfig" and c.features == {"HotReload": True}
    assert c.api_allowed[0].name == "state" and c.api_allowed[0].protocol == "http"
    assert c.http_pipeline[0].type == "middleware.http.bearer"
    assert c.components_deny == ["bindings.smtp"]
    assert c.section("accessControl")["defaultAction"] == "deny"


def test_configuration_errors_name_the_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: Configuration\nmetadata: {name: x}\nspec:\n  httpPipeline:\n    handlers: [{name: a}]\n")
    with pytest.raises(ConfigError, match=r"c.yaml#1: field spec.httpPipeline.handlers\[0\]"):
        load_configuration([cfg])
