"""pydapr: a Dapr-compatible, zero-trust sidecar runtime.

Plugin authors write ``from pydapr import hookimpl`` and use the descriptors
in :mod:`pydapr.registry` and the kind interfaces in :mod:`pydapr.kinds`.
"""
from __future__ import annotations

from .hookspecs import hookimpl

__version__ = "0.1.0"
#: the Dapr runtime version this sidecar speaks (reported by the metadata API)
DAPR_RUNTIME_VERSION = "1.16.0"

__all__ = ["hookimpl", "__version__", "DAPR_RUNTIME_VERSION"]
