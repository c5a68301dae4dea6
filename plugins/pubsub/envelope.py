"""The CloudEvent 1.0 envelope the sidecar wraps around a publish, or completes (spec 3.2).

Stricter than Dapr in two places, on purpose: a body declared JSON
(``application/json`` or ``*+json``) that does not parse is refused instead
of being published as a string, and an existing CloudEvent must be a JSON
object whose ``specversion`` (when present) is ``1.0`` and whose ``id``,
``source`` and ``type`` (when present) are non-empty strings. ``topic`` and
``pubsubname`` are always overwritten with the real ones, so a publisher
cannot make an event look like it came through another topic.
"""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import orjson

from pydapr.durations import parse_duration
from pydapr.errors import APIError
from pydapr.ids import new_span_id, new_traceparent, new_uuid

__all__ = ["envelope", "complete_envelope", "is_json", "child_traceparent",
           "parse_ttl", "flag", "CE_CONTENT_TYPE"]

CE_CONTENT_TYPE = "application/cloudevents+json"
_BINARY = ("application/octet-stream", "application/cloudevents+protobuf", "application/x-protobuf")
_OVERRIDABLE = ("id", "source", "type", "subject", "traceid", "traceparent", "tracestate")
_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}


_MEDIA: dict[str, str] = {}  # the few content types an app sends, parsed once each


def _media(content_type: str) -> str:
    media = _MEDIA.get(content_type)
    if media is None:
        media = content_type.split(";", 1)[0].strip().lower()
        if len(_MEDIA) < 256:
            _MEDIA[content_type] = media
    return media


def is_json(content_type: str) -> bool:
    m = _media(content_type)
    return m == "application/json" or (m.endswith("+json") and m != CE_CONTENT_TYPE)


def flag(metadata: Mapping[str, str], name: str) -> bool:
    """A Go-style bool from request metadata; anything else is ``ERR_PUBSUB_REQUEST_METADATA``."""
    value = metadata.get(name)
    if value is None:
        return False
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise APIError("ERR_PUBSUB_REQUEST_METADATA",
                   f"metadata {name}={value!r} is not a boolean (use true or false)")


def parse_ttl(metadata: Mapping[str, str]) -> float | None:
    """``ttlInSeconds`` (integer seconds) or ``ttl`` (Go duration); must be > 0."""
    raw, name = metadata.get("ttlInSeconds"), "ttlInSeconds"
    if raw is None:
        raw, name = metadata.get("ttl"), "ttl"
    if raw is None:
        return None
    try:
        seconds = float(int(raw)) if name == "ttlInSeconds" else parse_duration(raw)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise APIError("ERR_PUBSUB_REQUEST_METADATA",
                       f"metadata {name}={raw!r} must be a positive "
                       f"{'integer number of seconds' if name == 'ttlInSeconds' else 'duration'}")
    return seconds


def child_traceparent(parent: str) -> str:
    """A W3C traceparent for the publish span: child of ``parent`` when valid, else a new trace."""
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            return f"00-{parts[1]}-{new_span_id()}-{parts[3][:2] or '01'}"
    return new_traceparent()


def _overrides(metadata: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if len(k) > 11 and k[:11].lower() == "cloudevent.":
            field = k[11:].lower()
            if field in _OVERRIDABLE:
                out[field] = v
    if "traceparent" in out:
        out["traceid"] = out["traceparent"]
    return out


_clock: list = [0, ""]


def _now() -> str:
    """RFC 3339 local time, second precision (formatted once per second: it is on the hot path)."""
    sec = int(time.time())
    if _clock[0] != sec:
        _clock[0], _clock[1] = sec, datetime.fromtimestamp(sec).astimezone().isoformat(timespec="seconds")
    return _clock[1]


def _expiration(ttl: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat(timespec="seconds")


def envelope(data: bytes, content_type: str, topic: str, pubsub: str, source: str,
             metadata: Mapping[str, str] | None, traceparent: str, tracestate: str = "",
             expire_in: float | None = None) -> bytes:
    """The CloudEvent to publish, as JSON bytes: ``data`` completed when its content type says
    it is one (``application/cloudevents+json``), else wrapped in a new one.

    JSON data is checked, then carried as the publisher sent it (not parsed and written
    again), so large numbers and key order arrive exactly as published. The common case
    (JSON, no metadata) calls nothing it can do inline: a publish wakes an idle sidecar, and
    each function on the way is code to bring back into the CPU's caches.

    :raises APIError: ``ERR_PUBSUB_EVENTS_SER`` when a JSON content type holds malformed JSON,
        ``ERR_PUBSUB_CLOUD_EVENTS_SER`` when a CloudEvent is not a valid one.
    """
    ct = content_type or "text/plain"
    media = _MEDIA.get(ct) or _media(ct)
    if media == CE_CONTENT_TYPE:
        return complete_envelope(data, topic, pubsub, source, traceparent, tracestate, expire_in)
    sec = int(time.time())
    ce: dict[str, Any] = {"id": new_uuid(), "source": source or "Dapr",
                          "type": "com.dapr.event.sent", "specversion": "1.0",
                          "datacontenttype": ct}
    if media == "application/json" or media.endswith("+json"):
        if data:
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise APIError("ERR_PUBSUB_EVENTS_SER",
                               f"the body is declared {ct} but is not valid JSON ({exc}); "
                               "fix the body or send another Content-Type",
                               reason="DAPR_PUBSUB_MARSHAL_ENVELOPE") from None
            ce["data"] = orjson.Fragment(data)
        else:
            ce["data"] = ""
    elif media in _BINARY:
        ce["data_base64"] = base64.b64encode(data).decode()
    else:
        ce["data"] = data.decode("utf-8", "replace")
    ce["topic"] = topic
    ce["pubsubname"] = pubsub
    ce["traceid"] = ce["traceparent"] = traceparent
    ce["tracestate"] = tracestate
    ce["time"] = _clock[1] if _clock[0] == sec else _now()
    if metadata:
        ov = _overrides(metadata)
        for name in ("id", "source", "type"):  # an empty override keeps the sidecar's value
            if ov.get(name):
                ce[name] = ov[name]
        if ov.get("traceid"):
            ce["traceid"] = ce["traceparent"] = ov["traceid"]
        if "tracestate" in ov:
            ce["tracestate"] = ov["tracestate"]
        if "subject" in ov:
            ce["subject"] = ov["subject"]
    if expire_in is not None:
        ce["expiration"] = _expiration(expire_in)
    return orjson.dumps(ce)


def _invalid(why: str) -> APIError:
    return APIError("ERR_PUBSUB_CLOUD_EVENTS_SER", f"the body is not a valid CloudEvent: {why}")


def complete_envelope(body: bytes, topic: str, pubsub: str, source: str, traceparent: str,
                      tracestate: str = "", expire_in: float | None = None) -> bytes:
    """Complete an existing CloudEvent (``application/cloudevents+json``).

    :raises APIError: ``ERR_PUBSUB_CLOUD_EVENTS_SER`` (500) when it is not a valid CloudEvent.
    """
    try:
        ce = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"not JSON ({exc})") from None
    if not isinstance(ce, dict):
        raise _invalid(f"expected a JSON object, got {type(ce).__name__}")
    if ce.get("specversion", "1.0") != "1.0":
        raise _invalid(f"specversion must be \"1.0\", got {ce['specversion']!r}")
    for name in ("id", "source", "type"):
        if name in ce and (not isinstance(ce[name], str) or not ce[name]):
            raise _invalid(f"{name} must be a non-empty string")
    ce.setdefault("id", new_uuid())
    ce.setdefault("source", source or "Dapr")
    ce.setdefault("type", "com.dapr.event.sent")
    ce.setdefault("specversion", "1.0")
    ce.setdefault("time", _now())
    if not ce.get("traceid"):
        ce["traceid"] = ce["traceparent"] = traceparent
    ce.setdefault("tracestate", tracestate)
    ce["topic"], ce["pubsubname"] = topic, pubsub
    if expire_in is not None:
        ce["expiration"] = _expiration(expire_in)
    return orjson.dumps(ce)
