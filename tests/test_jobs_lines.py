"""Append-only line files: whole lines only, wherever the read blocks fall."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.jobs import JobCorrupt, JobStore, read_status
from evtui.jobs import lines as jl
from evtui.jobs.records import final_records

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.fixed_dictionaries({"frame": st.integers(0, 99), "t": texts}), max_size=30),
    torn=st.binary(max_size=20).filter(lambda b: b"\n" not in b),
    chunk=st.integers(1, 64),
)
def test_blocks_hold_whole_lines_and_skip_a_torn_tail(tmp_path_factory, records, torn, chunk):
    path = tmp_path_factory.mktemp("l") / "f.jsonl"
    body = b"".join(jl.dump(r) for r in records)
    path.write_bytes(body + torn)
    old, jl.CHUNK_BYTES = jl.CHUNK_BYTES, chunk
    try:
        blocks = list(jl.scan(path))
        assert jl.complete_size(path) == len(body)
        assert b"".join(b.raw for b in blocks) == body
        assert [x for b in blocks for x in b.items] == records
        for f in {r["frame"] for r in records}:
            assert list(jl.grep_frame(path, f)) == [r for r in records if r["frame"] == f]
        assert jl.repair_tail(path) == len(torn) and path.read_bytes() == body
    finally:
        jl.CHUNK_BYTES = old


def test_open_status_and_results_agree_across_many_small_blocks(tmp_path, monkeypatch):
    run = tmp_path / "run"
    rows = [
        {"frame": f, "target": t, "prompt_version": "v1", "state": s, "caption": f"c{f}{t}"}
        for f in range(40)
        for t, s in (("a/x", "done"), ("b/y", "failed" if f % 3 else "skipped"))
    ]
    with JobStore.open(run, {"config": {}}) as s:
        s.commit(rows[::-1])
    want = sorted((r["frame"], r["target"], r["state"]) for r in rows)
    monkeypatch.setattr(jl, "CHUNK_BYTES", 97)
    with JobStore.open(run, {"config": {}}) as s:
        assert sorted((f, t, st) for (f, t, _), st in s.completed().items()) == want
        assert [(r["frame"], r["target"], r["state"]) for r in s.results()] == want
    (run / "status.npz").unlink()
    st_ = read_status(run)
    assert (st_["done"], st_["failed"], st_["skipped"]) == (40, 26, 14)
    assert [(r["frame"], r["target"]) for r in final_records(run, frame=7)] == [
        (7, "a/x"),
        (7, "b/y"),
    ]


def test_a_corrupt_line_in_a_later_block_is_named_by_its_line_number(tmp_path, monkeypatch):
    path = tmp_path / "captions.jsonl"
    good = [jl.dump({"frame": i}) for i in range(50)]
    path.write_bytes(b"".join(good[:30]) + b"{oops\n" + b"".join(good[30:]))
    monkeypatch.setattr(jl, "CHUNK_BYTES", 64)
    at = sum(len(x) for x in good[:30])
    with pytest.raises(JobCorrupt, match=rf"captions\.jsonl:31 \(byte {at}\): invalid JSON"):
        for _ in jl.scan(path):
            pass
