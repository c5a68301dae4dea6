"""The one switch between compiled and pure-Python twins."""
from __future__ import annotations

import os
import sys

__all__ = ["NO_EXTENSIONS"]

#: True when the pure-Python twins must be used (``PYDAPR_NO_EXTENSIONS`` set to
#: anything but empty/0, or a non-CPython interpreter). setup.py reads the same variable.
NO_EXTENSIONS: bool = (
    os.environ.get("PYDAPR_NO_EXTENSIONS", "") not in ("", "0")
    or sys.implementation.name != "cpython"
)
