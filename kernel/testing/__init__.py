"""pydapr.testing: helpers for testing sidecars, apps and components (also for third parties).

* :class:`Sidecar` starts a real ``pydaprd`` process on free ports and waits for it.
* :class:`SentryProcess` starts a real ``pydapr sentry`` (certificate authority);
  ``pydapr.testing.pki.TestPKI`` generates test certificates (good and bad SVIDs).
* :func:`require_server` checks a local backend (Redis, PostgreSQL...): it fails
  under ``CI=true`` when unreachable and skips with a reason elsewhere.
* ``pydapr.testing.conformance`` holds one behavioural suite per component kind.
"""
from __future__ import annotations

from .servers import SERVERS, require_server, server_reachable
from .sentry import SentryProcess
from .sidecar import Sidecar, free_port

__all__ = ["Sidecar", "SentryProcess", "free_port", "require_server", "server_reachable", "SERVERS"]
