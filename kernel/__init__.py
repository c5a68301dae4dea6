"""pydapr: a Dapr-compatible, zero-trust sidecar runtime.

Plugin authors write ``from pydapr import hookimpl`` and use the descriptors
in :mod:`pydapr.registry` and the kind interfaces in :mod:`pydapr.kinds`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hookspecs import hookimpl

__version__ = "0.1.0"
#: the Dapr runtime version this sidecar speaks (reported by the metadata API)
DAPR_RUNTIME_VERSION = "1.16.0"

__all__ = ["hookimpl", "__version__", "DAPR_RUNTIME_VERSION"]


def __getattr__(name: str) -> Any:
    # hookimpl lives with pluggy in hookspecs; importing it lazily keeps `import pydapr` cheap,
    # so the sidecar can listen before any plugin machinery loads.
    if name == "hookimpl":
        from .hookspecs import hookimpl
        return hookimpl
    raise AttributeError(f"module 'pydapr' has no attribute {name!r}")
