"""The proxy frame codec, run against both twins (``frame_codec``), plus a differential test."""
from __future__ import annotations

import inspect
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pydapr import _frame_py as ref
from pydapr._frame_common import (DATA, END_STREAM, HEADERS, MAX_HEADERS, MAX_STREAM_ID, FrameError)


def test_frame_roundtrip(frame_codec):
    wire = frame_codec.encode_frame(HEADERS, END_STREAM, 7, b"abc")
    assert wire == struct.pack("!IBBI", 3, HEADERS, END_STREAM, 7) + b"abc"
    assert frame_codec.FrameDecoder().feed(wire) == [(HEADERS, END_STREAM, 7, b"abc")]


def test_decoder_handles_any_split(frame_codec):
    wire = (frame_codec.encode_frame(HEADERS, 0, 1, b"h" * 30)
            + frame_codec.encode_data(1, b"x" * 300, True, 100)
            + frame_codec.encode_frame(6, 0, 0, b"12345678"))
    for step in (1, 3, 10, 11, 64, len(wire)):
        dec = frame_codec.FrameDecoder(1000)
        frames = []
        for i in range(0, len(wire), step):
            frames += dec.feed(wire[i:i + step])
        assert [(t, f, s, len(p)) for t, f, s, p in frames] == [
            (HEADERS, 0, 1, 30), (DATA, 0, 1, 100), (DATA, 0, 1, 100), (DATA, END_STREAM, 1, 100),
            (6, 0, 0, 8)]
        assert dec.buffered == 0


def test_oversized_frame_rejected_before_buffering(frame_codec):
    dec = frame_codec.FrameDecoder(1024)
    with pytest.raises(FrameError, match="exceeds"):
        dec.feed(struct.pack("!IBBI", 1025, DATA, 0, 1))  # header only: nothing else read


def test_reserved_stream_bit_rejected(frame_codec):
    with pytest.raises(FrameError):
        frame_codec.FrameDecoder().feed(struct.pack("!IBBI", 0, DATA, 0, 0x80000001))


@pytest.mark.parametrize("args", [(256, 0, 1), (0, 256, 1), (0, 0, MAX_STREAM_ID + 1), (0, 0, -1)])
def test_encode_frame_ranges(frame_codec, args):
    with pytest.raises(FrameError):
        frame_codec.encode_frame(*args, b"")


def test_encode_data_splits_and_ends(frame_codec):
    assert frame_codec.encode_data(3, b"", False) == b""
    assert frame_codec.encode_data(3, b"", True) == frame_codec.encode_frame(DATA, END_STREAM, 3)
    frames = frame_codec.FrameDecoder().feed(frame_codec.encode_data(3, b"a" * 10, False, 4))
    assert [(f, len(p)) for _, f, _, p in frames] == [(0, 4), (0, 4), (0, 2)]


def test_headers_roundtrip(frame_codec):
    pairs = [(":method", "GET"), (":path", "a/b"), ("x-dup", "1"), ("x-dup", "2"), ("u", "ü€"),
             ("empty", "")]
    assert frame_codec.decode_headers(frame_codec.encode_headers(pairs)) == pairs


@pytest.mark.parametrize("payload", [
    b"", b"\x00", b"\x00\x01", b"\x00\x01\x00\x00",                         # truncated
    b"\x00\x01\x00\x01a\x00\x00\x00\x05ab",                                 # value runs past the end
    b"\x00\x01\x00\x01a\x00\x00\x00\x00extra",                              # trailing bytes
    b"\x00\x01\x00\x00\x00\x00\x00\x00",                                    # empty name
    b"\x00\x01\x00\x01\xff\x00\x00\x00\x00",                                # not UTF-8
    struct.pack("!H", MAX_HEADERS + 1),                                     # too many
    b"\x00\x01\x00\x01a\xff\xff\xff\xff",                                   # huge value length
])
def test_bad_header_blocks(frame_codec, payload):
    with pytest.raises(FrameError):
        frame_codec.decode_headers(payload)


def test_bad_header_inputs(frame_codec):
    with pytest.raises(FrameError):
        frame_codec.encode_headers([("", "x")])
    with pytest.raises(FrameError):
        frame_codec.encode_headers([("a", "\ud800")])
    with pytest.raises(TypeError):
        frame_codec.encode_headers([(b"a", "x")])
    with pytest.raises(TypeError):
        frame_codec.encode_frame(0, 0, 1, "text")
    with pytest.raises(FrameError):
        frame_codec.encode_headers([("a", "b")] * (MAX_HEADERS + 1))


def test_twins_have_the_same_interface(frame_codec):
    public = sorted(ref.__all__)
    assert sorted(frame_codec.__all__) == public
    for name in public:
        assert hasattr(frame_codec, name)
    assert {n for n in dir(frame_codec.FrameDecoder) if not n.startswith("_")} == \
        {n for n in dir(ref.FrameDecoder) if not n.startswith("_")}
    assert list(inspect.signature(frame_codec.encode_data).parameters) == \
        list(inspect.signature(ref.encode_data).parameters)


def test_selector_reports_its_implementation():
    from pydapr import frame
    assert frame.IMPLEMENTATION in ("python", "cython")


# -- differential: both twins give the same result or raise the same class ---------------

def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return ("err", type(exc))


_pairs = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_pairs)
def test_headers_roundtrip_property(frame_codec, pairs):
    result = _outcome(frame_codec.encode_headers, pairs)
    assert result == _outcome(ref.encode_headers, pairs)
    if result[0] == "ok":
        assert frame_codec.decode_headers(result[1]) == pairs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_headers_differential(frame_codec, data):
    assert _outcome(frame_codec.decode_headers, data) == _outcome(ref.decode_headers, data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8), st.integers(1, 64))
def test_decoder_differential(frame_codec, chunks, limit):
    a, b = frame_codec.FrameDecoder(limit), ref.FrameDecoder(limit)
    for chunk in chunks:
        ra, rb = _outcome(a.feed, chunk), _outcome(b.feed, chunk)
        assert ra == rb
        if ra[0] == "err":
            break
        assert a.buffered == b.buffered


@settings(max_examples=200, deadline=None)
@given(st.integers(-1, MAX_STREAM_ID + 1), st.binary(max_size=300), st.booleans(),
       st.integers(0, 130))
def test_encode_data_differential(frame_codec, sid, data, end, size):
    assert _outcome(frame_codec.encode_data, sid, data, end, size) == \
        _outcome(ref.encode_data, sid, data, end, size)
