"""The lean AMQP publisher packs content frames itself: byte for byte what pamqp marshals."""
from __future__ import annotations

from typing import Any

import pytest
from pamqp import commands, frame, header
from pamqp.body import ContentBody

from pydapr.components._common.amqp import _CHANNEL, _Conn


class _Recorder:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _pamqp_frames(exchange: str, body: bytes, props: commands.Basic.Properties, frame_max: int) -> bytes:
    out = [frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=""), _CHANNEL),
           frame.marshal(header.ContentHeader(0, len(body), props), _CHANNEL)]
    step = frame_max - 8
    out += [frame.marshal(ContentBody(body[i:i + step]), _CHANNEL) for i in range(0, len(body), step)]
    return b"".join(out)


@pytest.mark.parametrize("body", [b"", b"x", b'{"id": 1}' * 50, bytes(range(256)) * 40])
@pytest.mark.parametrize("props", [
    commands.Basic.Properties(),
    commands.Basic.Properties(content_type="application/cloudevents+json", headers={},
                              delivery_mode=2),
    commands.Basic.Properties(content_type="text/plain", headers={"traceid": "t", "n": "1"},
                              delivery_mode=2, expiration="60000"),
])
async def test_frames_match_pamqp(body: bytes, props: Any) -> None:
    conn = _Conn(timeout=5.0)
    conn.transport = rec = _Recorder()
    conn.frame_max = 4096  # the largest body spans three frames
    expected = _pamqp_frames("orders", body, props, conn.frame_max)
    fut = conn.publish("orders", body, props)
    fut2 = conn.publish("orders", body, props.marshal())
    assert rec.written == [expected, expected]
    assert list(conn.pending) == [1, 2]
    for f in (fut, fut2):
        f.cancel()
    conn.watchdog.cancel()
