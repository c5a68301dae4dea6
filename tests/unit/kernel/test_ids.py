"""Random identifiers drawn from a pooled CSPRNG: format, uniqueness, threads and fork."""
from __future__ import annotations

import os
import re
import threading
import uuid

from pydapr import ids


def test_uuids_are_version_4_and_unique_across_pool_refills() -> None:
    n = 3 * ids._POOL_BYTES // 16  # three pools' worth: every refill boundary is crossed
    drawn = [ids.new_uuid() for _ in range(n)]
    assert len(set(drawn)) == n
    variants = set()
    for text in drawn:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
        variants.add(text[19])
    assert variants == set("89ab")  # the variant digit keeps two random bits


def test_trace_and_span_ids() -> None:
    traces = {ids.new_trace_id() for _ in range(500)}
    spans = {ids.new_span_id() for _ in range(500)}
    assert len(traces) == 500 and len(spans) == 500
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) for s in spans)


def test_new_traceparents_are_valid_and_unique_across_pool_refills() -> None:
    n = 3 * ids._POOL_BYTES // 24  # 48 hex digits each: three pools' worth
    drawn = [ids.new_traceparent() for _ in range(n)]
    assert len(set(drawn)) == n
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", tp) for tp in drawn)
    assert len({tp[3:35] for tp in drawn}) == n and len({tp[36:52] for tp in drawn}) == n


def test_traceparents_never_carry_an_all_zero_id(monkeypatch) -> None:
    pools = iter([["0" * 48, "0" * 32 + "12" * 8], ["34" * 16 + "0" * 16, "ab" * 24]])
    monkeypatch.setattr(ids, "_random_hex", lambda width: next(pools))
    monkeypatch.setattr(ids, "_traceparents", iter(()))
    assert ids.new_traceparent() == f"00-{'ab' * 16}-{'ab' * 8}-01"  # the first pool had none


def test_all_zero_ids_are_drawn_again(monkeypatch) -> None:
    draws = iter(["0" * 32, "ab" * 16, "0" * 16 + "ef" * 8, "cd" * 16])
    monkeypatch.setattr(ids, "_chunk", lambda: next(draws))
    assert ids.new_trace_id() == "ab" * 16
    assert ids.new_span_id() == "cd" * 8


def test_digits_are_spread_evenly() -> None:
    text = "".join(ids._chunk() for _ in range(4000))  # 128,000 digits
    counts = [text.count(c) for c in "0123456789abcdef"]
    assert max(counts) - min(counts) < 1500  # 8,000 expected each; a stuck digit is far off


def test_threads_never_share_bytes() -> None:
    out: list[list[str]] = [[] for _ in range(4)]

    def draw(k: int) -> None:
        out[k].extend(ids._chunk() for _ in range(2000))
    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [h for part in out for h in part]
    assert len(set(everything)) == len(everything) == 8000


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    ids.new_uuid()  # the parent holds a part-used pool when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(write, " ".join(ids.new_uuid() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    child = set(os.read(read, 65536).decode().split())
    os.close(read)
    os.waitpid(pid, 0)
    parent = {ids.new_uuid() for _ in range(20)}
    assert len(child) == 20 and not child & parent
