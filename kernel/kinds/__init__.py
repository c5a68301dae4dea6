"""The component-kind interfaces. Building blocks call only these, never a concrete component.

Each kind is one small abstract class in its own module; optional
capabilities are separate small interfaces checked with ``isinstance``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..resources import Component as ComponentResource

__all__ = ["Feature", "ComponentInfo", "Component"]


class Feature(str, Enum):
    """Capabilities a component declares (reported in metadata ``capabilities``)."""

    ETAG = "ETAG"
    TRANSACTIONAL = "TRANSACTIONAL"
    TTL = "TTL"
    QUERY_API = "QUERY_API"
    ACTOR = "ACTOR"
    DELETE_WITH_PREFIX = "DELETE_WITH_PREFIX"
    PARTITION_KEY = "PARTITION_KEY"
    BULK_PUBLISH = "BULK_PUBLISH"
    BULK_SUBSCRIBE = "BULK_SUBSCRIBE"
    SUBSCRIBE_WILDCARDS = "SUBSCRIBE_WILDCARDS"
    MESSAGE_TTL = "MESSAGE_TTL"
    MULTIPLE_KEY_VALUES_PER_SECRET = "MULTIPLE_KEY_VALUES_PER_SECRET"
    INPUT_BINDING = "INPUT_BINDING"
    OUTPUT_BINDING = "OUTPUT_BINDING"


@dataclass(frozen=True)
class ComponentInfo:
    """What the kernel tells a component about itself when it creates it.

    :param properties: the resolved metadata (secrets and env refs filled in),
        case preserved; the component's typed ``Metadata`` is decoded from it.
    """

    name: str
    type: str
    version: str = "v1"
    app_id: str = ""
    namespace: str = "default"
    properties: dict[str, str] = field(default_factory=dict, repr=False)
    resource: ComponentResource | None = field(default=None, repr=False)


class Component(abc.ABC):
    """Base of every component. Subclasses set ``metadata_type`` and ``features``.

    Keep the module cheap to import: import the client library inside :meth:`init`.
    """

    metadata_type: ClassVar[type | None] = None
    features: ClassVar[frozenset[Feature]] = frozenset()

    def __init__(self, info: ComponentInfo) -> None:
        self.info = info

    @abc.abstractmethod
    async def init(self, metadata: Any) -> None:
        """Connect and prepare; ``metadata`` is an instance of ``metadata_type`` (or the raw dict)."""

    async def close(self) -> None:
        """Release connections. Called once at shutdown or when the resource is removed."""

    async def ping(self) -> None:
        """Raise when the backend is unreachable (used by readiness); default: always fine."""
