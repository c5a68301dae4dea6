"""``secretstores.local.env``: the sidecar's environment variables as secrets (development use).

The sidecar's own credentials are never readable through it: a name that is
``APP_API_TOKEN`` or starts with ``DAPR_`` (either case), checked on the full
variable name *after* the optional ``prefix`` is added, is refused, and bulk
reads leave such variables out. Unlike Dapr, which answers an empty value, a
variable that is not set (or refused) is reported as a missing secret, so a
``secretKeyRef`` to a typo fails at start-up instead of yielding "".
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from pydapr import hookimpl
from pydapr.kinds.secretstores import SecretStore
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["EnvSecretStore", "EnvMetadata", "reserved"]


@dataclass(frozen=True)
class EnvMetadata:
    prefix: str = meta("", doc="read PREFIX + name; bulk reads list only variables with the prefix")


def reserved(variable: str) -> bool:
    """True for the sidecar's own variables, which no secret store may disclose."""
    upper = variable.upper()
    return upper == "APP_API_TOKEN" or upper.startswith("DAPR_")


class EnvSecretStore(SecretStore):
    metadata_type = EnvMetadata

    async def init(self, metadata: EnvMetadata) -> None:
        self.prefix = metadata.prefix

    async def get_secret(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        variable = self.prefix + name
        if reserved(variable):
            raise KeyError(f"secret {name} is not available: APP_API_TOKEN and variables starting "
                           "with DAPR_ belong to the sidecar")
        value = os.environ.get(variable)
        if value is None:
            raise KeyError(f"secret {name} not found (environment variable {variable} is not set)")
        return {name: value}

    async def bulk_get_secret(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        size = len(self.prefix)
        for variable, value in os.environ.items():
            if len(variable) <= size or not variable.startswith(self.prefix) or reserved(variable):
                continue
            name = variable[size:]
            out[name] = {name: value}
        return out


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("secretstores.local.env", "v1", EnvSecretStore)]
