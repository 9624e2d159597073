"""Exports of a run: JSONL, CSV, Parquet rows and WebDataset shards that loaders can read."""

from __future__ import annotations

import csv
import importlib.util
import re
import tarfile

import cv2
import numpy as np
import orjson
import pytest

from evtui.jobs import JobStore
from evtui.jobs.export import (
    FIELDS,
    REVIEW_FIELDS,
    export_csv,
    export_jsonl,
    export_parquet,
    frame_samples,
    write_webdataset,
)

A, B = "anthropic/claude-haiku", "openai/gpt-4o-mini"
MANIFEST = {"config": {}, "prompts": {"default": "v1"}, "targets": [A, B], "mode": "compare"}


def result(frame, target, state="done", **extra):
    r = {
        "frame": frame,
        "t0_us": frame * 50_000,
        "t1_us": (frame + 1) * 50_000,
        "events": 10 * frame,
        "target": target,
        "model": target.split("/")[1],
        "prompt_version": "v1",
        "state": state,
        "caption": f"{target} sees frame {frame}" if state == "done" else None,
        "reason": None if state == "done" else f"{state}!",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.5,
        "latency_s": 1.5,
        "attempts": 1,
        "cache_hit": False,
        "cache_source": None,
        "flags": [],
    }
    r.update(extra)
    return r


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    with JobStore.open(run, MANIFEST) as s:
        # committed out of order, as a concurrent engine finishes them
        s.commit([result(2, B), result(1, A, flags=["short", "ocr"]), result(3, A, "skipped")])
        s.commit([result(0, B, cache_hit=True, cache_source={"frame": 0, "target": A})])
        s.commit([result(1, B, "failed"), result(2, A, "skipped"), result(3, B, "skipped")])
        s.commit([result(0, A, extra={"k": [1, 2]}), result(4, A), result(4, B)])
        s.add_review({"frame": 0, "target": A, "decision": "reject", "at": "t1"})
        s.add_review({"frame": 0, "target": B, "decision": "accept", "at": "t2"})
        s.add_review({"frame": 1, "target": A, "decision": "edit", "text": "edited", "at": "t3"})
        s.add_review({"frame": 2, "target": B, "decision": "prefer", "at": "t4"})
        s.add_review({"frame": 4, "target": A, "decision": "reject", "at": "t5"})
        s.add_review({"frame": 4, "target": B, "decision": "reject", "at": "t6"})
    return run


ORDER = [(f, t) for f in range(5) for t in (A, B)]


def test_jsonl_has_one_row_per_frame_and_target_in_order_with_reviews(run, tmp_path):
    out = tmp_path / "out" / "rows.jsonl"
    assert export_jsonl(run, out) == 10
    rows = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(r["frame"], r["target"]) for r in rows] == ORDER
    by = {(r["frame"], r["target"]): r for r in rows}
    assert by[(1, B)]["state"] == "failed" and by[(1, B)]["reason"] == "failed!"
    assert by[(0, A)]["extra"] == {"k": [1, 2]}  # unknown fields kept
    assert by[(0, A)]["review_decision"] == "reject" and by[(1, A)]["review_text"] == "edited"
    assert by[(3, A)]["review_decision"] is None
    assert not list(out.parent.glob(".*partial"))


def test_jsonl_can_keep_only_done_rows(run, tmp_path):
    out = tmp_path / "done.jsonl"
    assert export_jsonl(run, out, states=("done",)) == 6
    assert {orjson.loads(x)["state"] for x in out.read_bytes().splitlines()} == {"done"}


def test_csv_columns_and_cells(run, tmp_path):
    out = tmp_path / "rows.csv"
    assert export_csv(run, out) == 10
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == FIELDS + REVIEW_FIELDS
        rows = list(reader)
    assert [(int(r["frame"]), r["target"]) for r in rows] == ORDER
    by = {(int(r["frame"]), r["target"]): r for r in rows}
    assert by[(1, A)]["flags"] == "short;ocr"
    assert orjson.loads(by[(0, B)]["cache_source"]) == {"frame": 0, "target": A}
    assert by[(0, B)]["cache_hit"] == "True" and by[(2, A)]["caption"] == ""
    assert by[(0, B)]["review_decision"] == "accept"


def test_parquet_when_pyarrow_is_installed(run, tmp_path):
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(Exception, match="pyarrow"):
            export_parquet(run, tmp_path / "rows.parquet")
        pytest.skip("pyarrow not installed (the optional parquet extra)")
    import pyarrow.parquet as pq

    assert export_parquet(run, tmp_path / "rows.parquet") == 10
    table = pq.read_table(tmp_path / "rows.parquet")
    assert table.column_names == list(FIELDS + REVIEW_FIELDS)
    assert table.column("frame").to_pylist() == [f for f, _ in ORDER]


def test_frame_samples_choose_the_text_a_loader_trains_on(run):
    samples = dict(frame_samples(run))
    assert sorted(samples) == [0, 1, 2, 4]  # frame 3: nothing captioned
    assert samples[0]["text"] == f"{B} sees frame 0"  # A rejected, B accepted
    assert samples[1]["text"] == "edited"
    assert samples[2]["text"] == f"{B} sees frame 2"
    assert "text" not in samples[4]  # every caption rejected
    s1 = samples[1]
    assert set(s1["captions"]) == {A} and s1["not_captioned"][B]["state"] == "failed"
    assert s1["reviews"] == {A: {"decision": "edit", "text": "edited", "at": "t3"}}
    assert (s1["t0_us"], s1["t1_us"], s1["events"]) == (50_000, 100_000, 10)
    assert len(dict(frame_samples(run, only_captioned=False))) == 5


def png(frame: int) -> bytes:
    img = np.full((8, 8, 3), frame * 20, np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def wds_samples(path):
    """Group tar members the way WebDataset does: key up to the first dot, then extension."""
    out: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key, ext = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", m.name).groups()
            if not out or out[-1][0] != key:
                out.append((key, {}))
            out[-1][1][ext] = tar.extractfile(m).read()
    return out


def test_webdataset_shards_hold_png_json_and_txt_per_sample(run, tmp_path):
    out = tmp_path / "wds"
    shards = write_webdataset(
        ((f, png(f), s) for f, s in frame_samples(run)), out, shard_size=3, key_prefix="rec-a_"
    )
    assert [p.name for p in shards] == ["000000.tar", "000001.tar"]
    assert sorted(p.name for p in out.iterdir()) == ["000000.tar", "000001.tar"]
    got = wds_samples(shards[0]) + wds_samples(shards[1])
    assert [k for k, _ in got] == [f"rec-a_{f:09d}" for f in (0, 1, 2, 4)]
    assert [sorted(parts) for _, parts in got] == [["json", "png", "txt"]] * 3 + [["json", "png"]]
    _, parts = got[1]
    meta = orjson.loads(parts["json"])
    assert meta["frame"] == 1 and meta["captions"][A]["caption"] == f"{A} sees frame 1"
    assert meta["reviews"][A]["decision"] == "edit" and parts["txt"] == b"edited"
    img = cv2.imdecode(np.frombuffer(parts["png"], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (8, 8, 3) and int(img[0, 0, 0]) == 20


def test_webdataset_refuses_what_would_break_a_loader(run, tmp_path):
    with pytest.raises(ValueError, match="first dot"):
        write_webdataset([], tmp_path / "a", key_prefix="rec.1")
    with pytest.raises(ValueError, match="given twice"):
        write_webdataset([(1, b"p", {}), (1, b"p", {})], tmp_path / "b")
    write_webdataset([(1, b"p", {})], tmp_path / "c")
    with pytest.raises(FileExistsError, match="already holds shards"):
        write_webdataset([(1, b"p", {})], tmp_path / "c")


def test_a_failed_webdataset_export_leaves_only_complete_shards(tmp_path):
    def samples():
        yield 0, b"p0", {"text": "a"}
        yield 1, b"p1", {"text": "b"}
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_webdataset(samples(), tmp_path / "w", shard_size=1)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["000000.tar", "000001.tar"]
    with pytest.raises(RuntimeError):
        write_webdataset(samples(), tmp_path / "x", shard_size=5)
    assert list((tmp_path / "x").iterdir()) == []


def test_exports_read_a_live_run_without_its_lock(run, tmp_path):
    with JobStore.open(run, MANIFEST) as s:
        s.commit([result(9, A)])
        assert export_jsonl(run, tmp_path / "live.jsonl") == 11


def test_a_route_mode_skip_without_a_target_exports_under_its_slot(tmp_path):
    run = tmp_path / "route"
    skip = {**result(1, A, "skipped"), "slot": "route", "target": None, "prompt_version": None}
    with JobStore.open(run, {**MANIFEST, "mode": "route"}) as s:
        s.commit([skip, {**result(0, B), "slot": "route"}])
    samples = dict(frame_samples(run, only_captioned=False))
    assert samples[1]["not_captioned"]["route"]["state"] == "skipped"
    assert samples[0]["text"] == f"{B} sees frame 0"
    assert export_csv(run, tmp_path / "r.csv") == 2
