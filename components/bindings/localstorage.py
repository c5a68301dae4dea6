"""``bindings.localstorage``: create, get, list and delete files under ``rootPath``.

Every file name is confined to the root. A name that is absolute, contains
a ``..`` segment or a NUL, or that resolves (through symbolic links) to a
place outside the root is refused before anything is touched, and files are
opened with ``O_NOFOLLOW`` so a link swapped in after the check is not
followed either. ``list`` walks without following links and answers names
relative to the root (never the server's absolute paths).

As in Dapr, ``create`` stores a JSON string's text (not its quotes) and
decodes data that is valid padded base64, which is how binary files travel.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydapr import hookimpl
from pydapr.errors import ComponentError
from pydapr.kinds.bindings import InvokeRequest, InvokeResponse, OutputBinding, metadata_value
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["LocalStorageBinding", "LocalStorageMetadata", "confine"]

_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
_OPEN_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class LocalStorageMetadata:
    root_path: str = meta(doc="folder the binding reads and writes; created when missing")


class OutsideRoot(ComponentError, ValueError):
    """The file name points outside the binding's root."""


def confine(root: Path, name: str) -> Path:
    """``root/name`` when it stays inside ``root`` (``root`` already resolved).

    :raises OutsideRoot: for absolute names, ``..`` segments, NUL bytes, or a path whose
        existing part resolves outside ``root`` through a symbolic link.
    """
    if not name or "\x00" in name:
        raise OutsideRoot("fileName is empty or contains a NUL byte")
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
        raise OutsideRoot(f"fileName {name!r} must be a relative path without '..'")
    target = root.joinpath(*[p for p in parts if p not in ("", ".")])
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop
        raise OutsideRoot(f"fileName {name!r} cannot be resolved") from None
    if resolved != root and root not in resolved.parents:
        raise OutsideRoot(f"fileName {name!r} resolves outside the binding's rootPath")
    return target


class LocalStorageBinding(OutputBinding):
    metadata_type = LocalStorageMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.root = Path(".")

    async def init(self, metadata: LocalStorageMetadata) -> None:
        root = Path(metadata.root_path).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def operations(self) -> list[str]:
        return ["create", "get", "list", "delete"]

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        name = metadata_value(request.metadata, "fileName")
        op = request.operation
        if op == "create":
            name = name or str(uuid.uuid4())
            return await asyncio.to_thread(self._create, confine(self.root, name), request.data)
        if op == "list":
            base = confine(self.root, name) if name else self.root
            return await asyncio.to_thread(self._list, base)
        if not name:
            raise ComponentError(f"metadata fileName is required for {op}")
        target = confine(self.root, name)
        if op == "get":
            return await asyncio.to_thread(self._get, target, name)
        await asyncio.to_thread(self._delete, target, name)
        return None

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _create(self, target: Path, data: bytes) -> InvokeResponse:
        content = _decode(data)
        name = self._relative(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            confine(self.root, name)  # the folders made must still be inside
            fd = os.open(target, _OPEN_WRITE, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        except OSError as exc:  # name the file relative to the root, never the host path
            raise ComponentError(f"cannot write {name}: {exc.strerror}") from None
        return InvokeResponse(json.dumps({"fileName": self._relative(target)}).encode())

    def _get(self, target: Path, name: str) -> InvokeResponse:
        try:
            fd = os.open(target, _OPEN_READ)
        except FileNotFoundError:
            raise ComponentError(f"file not found: {name}") from None
        except OSError as exc:
            raise ComponentError(f"cannot read {name}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            return InvokeResponse(f.read(), content_type="application/octet-stream")

    def _list(self, base: Path) -> InvokeResponse:
        names: list[str] = []
        if base.is_dir() and not base.is_symlink():
            for folder, dirs, files in os.walk(base, followlinks=False):
                dirs.sort()
                names.extend(self._relative(Path(folder, f)) for f in sorted(files))
        return InvokeResponse(json.dumps(names).encode())

    def _delete(self, target: Path, name: str) -> None:
        try:
            target.unlink()
        except FileNotFoundError:
            raise ComponentError(f"file not found: {name}") from None
        except OSError as exc:
            raise ComponentError(f"cannot delete {name}: {exc.strerror}") from None


def _decode(data: bytes) -> bytes:
    """A JSON string's text; then, if that is valid padded base64, its decoded bytes."""
    if data[:1] == b'"':
        try:
            text = json.loads(data)
            if isinstance(text, str):
                data = text.encode()
        except ValueError:
            pass
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.localstorage", "v1", LocalStorageBinding)]
