"""Go-style durations (``300ms``, ``1h30m``, ``1h0m0s0ms0μs``) as Dapr writes them."""
from __future__ import annotations

import re

__all__ = ["parse_duration", "format_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
          "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go duration string; bare numbers are seconds.

    :raises ValueError: with the offending text when it is not a duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body in ("0", ""):
        if body == "":
            raise ValueError(f"invalid duration {text!r}")
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body):
        try:
            return sign * float(body)
        except ValueError:
            raise ValueError(f"invalid duration {text!r}: expected e.g. '5s', '300ms', '1h30m'") from None
    return sign * total


def format_duration(seconds: float) -> str:
    """A compact Go-style duration (``1h30m0s``, ``500ms``)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{s}s"
