"""Decode a component's ``spec.metadata`` into its typed ``Metadata`` dataclass.

Each component declares a frozen dataclass; a field's Dapr name defaults to
its camelCase form and is matched case-insensitively, as Dapr does. Field
options go in ``dataclasses.field(metadata=...)``: ``name`` (the Dapr name or
a tuple of accepted names), ``doc`` and ``sensitive`` (never logged).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from .durations import parse_duration
from .errors import ConfigError

__all__ = ["meta", "decode", "dapr_names", "redact", "Duration"]


class Duration(float):
    """A field type: seconds, written in the resource as a Go duration (``5s``)."""


def meta(default: Any = dataclasses.MISSING, *, name: str | tuple[str, ...] = (), doc: str = "",
         sensitive: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare a metadata field: ``redis_password: str = meta("", sensitive=True, doc=...)``."""
    info = {"name": (name,) if isinstance(name, str) else tuple(name), "doc": doc,
            "sensitive": sensitive}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=info)
    return dataclasses.field(default=default, metadata=info)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def dapr_names(f: dataclasses.Field) -> tuple[str, ...]:
    names = tuple(f.metadata.get("name", ())) if f.metadata else ()
    return names or (_camel(f.name),)


def _convert(value: str, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return _convert(value, args[0], where)
    # messages never quote the value: it may have come from a secret store
    try:
        if typ is bool:
            low = value.strip().lower()
            if low in ("true", "1", "yes", "y", "on"):
                return True
            if low in ("false", "0", "no", "n", "off", ""):
                return False
            raise ValueError("expected true or false")
        if typ is Duration:
            return Duration(parse_duration(value))
        if typ is int:
            return int(value.strip())
        if typ is float:
            return float(value.strip())
        if typ is str or typ is Any:
            return value
        if origin in (list, tuple) or typ in (list, tuple):
            items = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(items) if (origin or typ) is tuple else items
    except ValueError as exc:
        expected = {int: "an integer", float: "a number", Duration: "a duration such as 5s or 1m30s"}
        why = str(exc) if typ is bool else f"expected {expected.get(typ, typ)}"
        raise ConfigError(f"{where}: {why} (value not shown)") from None
    return value


def decode(cls: type, items: Mapping[str, str], where: str = "metadata") -> Any:
    """Build ``cls`` from name -> string values.

    :param where: prefix for error messages (file, document, component).
    :raises ConfigError: naming the field when a value does not convert or a
        required field is missing.
    """
    lowered = {k.lower(): (k, v) for k, v in items.items()}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        names = dapr_names(f)
        for n in names:
            if n.lower() in lowered:
                written, value = lowered[n.lower()]
                kwargs[f.name] = _convert(str(value), hints[f.name], f"{where}: field {written!r}")
                break
        else:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: required field {names[0]!r} is missing")
    return cls(**kwargs)


def redact(cls: type | None, items: Mapping[str, str]) -> dict[str, str]:
    """A copy of the values safe to log: sensitive fields (and anything that looks like one) masked."""
    sensitive: set[str] = set()
    if cls is not None and dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.metadata and f.metadata.get("sensitive"):
                sensitive.update(n.lower() for n in dapr_names(f))
    hints = ("password", "secret", "token", "key", "credential", "connectionstring")
    return {k: ("***" if k.lower() in sensitive or any(h in k.lower() for h in hints) else v)
            for k, v in items.items()}
