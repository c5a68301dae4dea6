"""Logging setup: daprd's levels, plain or JSON lines (``--log-as-json``)."""
from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["setup_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "fatal": logging.CRITICAL}


class _JSONFormatter(logging.Formatter):
    def __init__(self, app_id: str) -> None:
        super().__init__()
        self.app_id = app_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "scope": record.name, "app_id": self.app_id,
                 "msg": record.getMessage()}
        extra = getattr(record, "event", None)
        if extra:
            entry["event"] = extra
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str = "info", as_json: bool = False, app_id: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JSONFormatter(app_id))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s [{app_id}] %(name)s: %(message)s"))
    root = logging.getLogger("pydapr")
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    root.propagate = False
