"""secretstores.local.file and secretstores.local.env."""
from __future__ import annotations

import json

import pytest

from pydapr.components.secretstores.local_env import EnvMetadata, EnvSecretStore
from pydapr.components.secretstores.local_file import (LocalFileMetadata, LocalFileSecretStore,
                                                       flatten)
from pydapr.errors import ConfigError
from pydapr.kinds import ComponentInfo, Feature


async def file_store(tmp_path, document, **md) -> LocalFileSecretStore:
    path = tmp_path / "secrets.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    store = LocalFileSecretStore(ComponentInfo("files", "secretstores.local.file"))
    await store.init(LocalFileMetadata(secrets_file=str(path), **md))
    return store


def test_flatten_objects_arrays_and_scalars():
    doc = {"db": {"user": "u", "ports": [5432, 5433], "tls": True, "none": None}, "top": "t"}
    assert flatten(doc, ":") == {"db:user": "u", "db:ports:0": "5432", "db:ports:1": "5433",
                                 "db:tls": "true", "db:none": "", "top": "t"}
    assert flatten({"a": {"b": "c"}}, ".") == {"a.b": "c"}


def test_flatten_refuses_two_paths_that_give_one_key():
    with pytest.raises(ConfigError, match="'a:b' appears twice"):
        flatten({"a:b": "x", "a": {"b": "y"}}, ":")


async def test_single_valued_file_store(tmp_path):
    store = await file_store(tmp_path, {"db": {"password": "p"}, "key": "k"})
    assert await store.get_secret("db:password", {}) == {"db:password": "p"}
    assert await store.bulk_get_secret({}) == {"db:password": {"db:password": "p"},
                                               "key": {"key": "k"}}
    assert Feature.MULTIPLE_KEY_VALUES_PER_SECRET not in store.features
    with pytest.raises(KeyError, match="secret db not found"):
        await store.get_secret("db", {})


async def test_multi_valued_file_store(tmp_path):
    store = await file_store(tmp_path, {"db": {"user": "u", "opts": {"tls": "on"}}, "plain": "v"},
                             multi_valued=True, nested_separator="/")
    assert await store.get_secret("db", {}) == {"user": "u", "opts/tls": "on"}
    assert await store.get_secret("plain", {}) == {"plain": "v"}
    assert Feature.MULTIPLE_KEY_VALUES_PER_SECRET in store.features


async def test_returned_secrets_are_copies(tmp_path):
    store = await file_store(tmp_path, {"k": "v"})
    (await store.get_secret("k", {}))["k"] = "changed"
    assert await store.get_secret("k", {}) == {"k": "v"}


@pytest.mark.parametrize("document, message", [
    ('{"password": "hunter2",', "not valid JSON"),
    ('["hunter2"]', "must hold a JSON object"),
])
async def test_bad_file_errors_never_quote_the_content(tmp_path, document, message):
    with pytest.raises(ConfigError, match=message) as err:
        await file_store(tmp_path, document)
    assert "hunter2" not in str(err.value)


async def test_missing_file_is_named(tmp_path):
    store = LocalFileSecretStore(ComponentInfo("files", "secretstores.local.file"))
    with pytest.raises(ConfigError, match="cannot read secretsFile"):
        await store.init(LocalFileMetadata(secrets_file=str(tmp_path / "absent.json")))


async def env_store(prefix: str = "") -> EnvSecretStore:
    store = EnvSecretStore(ComponentInfo("env", "secretstores.local.env"))
    await store.init(EnvMetadata(prefix=prefix))
    return store


async def test_env_store_reads_variables(monkeypatch):
    monkeypatch.setenv("SECTEST_ONE", "1")
    store = await env_store()
    assert await store.get_secret("SECTEST_ONE", {}) == {"SECTEST_ONE": "1"}
    with pytest.raises(KeyError, match="is not set"):
        await store.get_secret("SECTEST_ABSENT", {})


@pytest.mark.parametrize("prefix, name", [
    ("", "DAPR_API_TOKEN"), ("", "dapr_api_token"), ("", "APP_API_TOKEN"), ("", "App_Api_Token"),
    ("", "DAPR_CERT_KEY"), ("DAPR_", "API_TOKEN"), ("dapr_", "API_TOKEN"),
])
async def test_env_store_refuses_the_sidecars_own_variables(monkeypatch, prefix, name):
    for var in ("DAPR_API_TOKEN", "APP_API_TOKEN", "DAPR_CERT_KEY", "dapr_api_token",
                "App_Api_Token", "dapr_API_TOKEN"):
        monkeypatch.setenv(var, "sidecar-credential")
    store = await env_store(prefix)
    with pytest.raises(KeyError, match="belong to the sidecar"):
        await store.get_secret(name, {})
    bulk = await store.bulk_get_secret({})
    assert all("sidecar-credential" not in v[k] for k, v in bulk.items())


async def test_env_store_prefix(monkeypatch):
    monkeypatch.setenv("MYAPP_DB", "db-value")
    monkeypatch.setenv("OTHER_DB", "other")
    store = await env_store("MYAPP_")
    assert await store.get_secret("DB", {}) == {"DB": "db-value"}
    bulk = await store.bulk_get_secret({})
    assert bulk["DB"] == {"DB": "db-value"} and "OTHER_DB" not in bulk and "" not in bulk
