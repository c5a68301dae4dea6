"""``secretstores.local.file``: secrets read once from a JSON file (development use).

Nested objects and arrays are flattened into keys joined with
``nestedSeparator`` (default ``:``), so ``{"db": {"password": "x"}}`` gives the
secret ``db:password``. With ``multiValued: true`` each top-level key is one
secret and what is nested under it becomes that secret's keys. Two paths that
flatten to the same key stop initialisation, naming the key (never a value).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.kinds import Feature
from pydapr.kinds.secretstores import SecretStore
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["LocalFileSecretStore", "LocalFileMetadata", "flatten"]


@dataclass(frozen=True)
class LocalFileMetadata:
    secrets_file: str = meta(doc="path of the JSON file (relative to the sidecar's working folder)")
    nested_separator: str = meta(":", doc="joins the keys of nested objects and arrays")
    multi_valued: bool = meta(False, doc="each top-level key is one secret with several keys")


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)  # numbers and booleans as written in JSON ("true", "3", "2.5")


def flatten(node: Any, separator: str, prefix: str = "", out: dict[str, str] | None = None
            ) -> dict[str, str]:
    """Flatten nested objects/arrays into ``{"a:b:0": "v"}``.

    :raises ConfigError: when two paths give the same key.
    """
    out = {} if out is None else out
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        if prefix in out:
            raise ConfigError(f"the key {prefix!r} appears twice once nested keys are joined "
                              f"with {separator!r}")
        out[prefix] = _scalar(node)
        return out
    for key, value in items:
        flatten(value, separator, f"{prefix}{separator}{key}" if prefix else str(key), out)
    return out


class LocalFileSecretStore(SecretStore):
    metadata_type = LocalFileMetadata

    async def init(self, metadata: LocalFileMetadata) -> None:
        if not metadata.secrets_file:
            raise ConfigError("secretsFile is required: the path of the JSON secrets file")
        path = Path(metadata.secrets_file).expanduser()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read secretsFile {str(path)!r}: "
                              f"{exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            # the position only: the message of a JSON error may quote the file's content
            where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "its bytes"
            raise ConfigError(f"secretsFile {str(path)!r} is not valid JSON (at {where})") from None
        if not isinstance(document, dict):
            raise ConfigError(f"secretsFile {str(path)!r} must hold a JSON object")
        sep = metadata.nested_separator or ":"
        self.secrets: dict[str, dict[str, str]] = {}
        if metadata.multi_valued:
            self.features = frozenset({Feature.MULTIPLE_KEY_VALUES_PER_SECRET})
            for name, value in document.items():
                nested = isinstance(value, (dict, list))
                self.secrets[name] = flatten(value, sep) if nested else {name: _scalar(value)}
        else:
            self.secrets = {k: {k: v} for k, v in flatten(document, sep).items()}

    async def get_secret(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        found = self.secrets.get(name)
        if found is None:
            raise KeyError(f"secret {name} not found")
        return dict(found)

    async def bulk_get_secret(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        return {name: dict(values) for name, values in self.secrets.items()}


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("secretstores.local.file", "v1", LocalFileSecretStore)]
