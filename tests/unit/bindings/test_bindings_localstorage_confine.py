"""The local storage binding never reaches outside its root (names, links, loops)."""
from __future__ import annotations

import pytest

from pydapr.components.bindings.localstorage import OutsideRoot, _decode, confine


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    return r.resolve()


@pytest.mark.parametrize("name", ["a.txt", "dir/a.txt", "./a.txt", "dir//a.txt", "dir/./b"])
def test_names_inside_the_root(root, name):
    assert root in confine(root, name).parents


@pytest.mark.parametrize("name", ["", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "a\\..\\x",
                                  "nul\x00byte"])
def test_names_that_escape_are_refused(root, name):
    with pytest.raises(OutsideRoot):
        confine(root, name)


def test_links_out_of_the_root_are_refused(root, tmp_path):
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "file-out").symlink_to(tmp_path / "outside" / "secret")
    for name in ("out/new.txt", "file-out"):
        with pytest.raises(OutsideRoot):
            confine(root, name)


def test_link_loops_are_refused(root):
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(OutsideRoot):
        confine(root, "loop/x")


@pytest.mark.parametrize("data, stored", [
    (b'"hello"', b"hello"),                  # a JSON string's text
    (b'"aGVsbG8="', b"hello"),               # base64 inside a JSON string
    (b"aGVsbG8=", b"hello"),                 # raw base64 (gRPC)
    (b"not base64!", b"not base64!"),
    (b'{"a": 1}', b'{"a": 1}'),
])
def test_create_data_decoding(data, stored):
    assert _decode(data) == stored
