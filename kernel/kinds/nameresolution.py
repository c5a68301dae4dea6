"""The ``nameresolution`` kind: app id -> address of its sidecar's internal (proxy) port.

A resolver is chosen by the Configuration's ``spec.nameResolution``
(``component``, ``version``, ``configuration``); the default is
``nameresolution.sqlite``, which needs no configuration on one machine.
"""
from __future__ import annotations

import abc
import socket
from dataclasses import dataclass

from . import Component

__all__ = ["Registration", "NameResolver", "advertised_host"]


@dataclass(frozen=True)
class Registration:
    """Where an app's sidecar listens.

    :param trust_domain: the trust domain of the app's SPIFFE id when the resolver
        knows it (``""`` when it does not; the caller then assumes its own).
    """

    app_id: str
    namespace: str
    host: str
    port: int
    trust_domain: str = ""


class NameResolver(Component):
    @abc.abstractmethod
    async def register(self, me: Registration) -> None:
        """Announce this sidecar; called once the proxy port listens."""

    @abc.abstractmethod
    async def resolve(self, app_id: str, namespace: str) -> Registration:
        """Where the app's sidecar listens; raise ``LookupError`` when unknown.

        Called per request: implementations cache.
        """

    def forget(self, app_id: str, namespace: str) -> None:
        """Drop a cached answer (the caller could not connect to it)."""


def advertised_host(listen: str) -> str:
    """The address other sidecars should dial for a listener on ``listen``.

    A wildcard listener (``0.0.0.0``, ``::``, empty) advertises the host's primary address.
    """
    if listen not in ("0.0.0.0", "::", ""):
        return listen
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outbound interface
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
