"""The job directory: resume, crash repair, settings mismatch, lock, status, bad conditions."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from evtui.jobs import (
    JobCorrupt,
    JobError,
    JobLocked,
    JobMismatch,
    JobStore,
    JobWriteError,
    read_status,
)
from evtui.jobs import lines as jl
from evtui.jobs.layout import CAPTIONS, LEDGER, SNAPSHOT, TRACE

ROOT = Path(__file__).resolve().parents[1]
SECRET = "abc" + "1234567890" * 3  # a stand-in key value: must never reach a file or message


def manifest(**changes):
    m = {
        "config": {
            "providers": {
                "openai": {"protocol": "openai", "keys": [{"key": "***"}], "timeout_s": 60}
            },
            "targets": [
                {"id": "openai/gpt-4o-mini", "weight": 1.0, "prompt": "default"},
                {"id": "anthropic/claude-haiku", "weight": 1.0, "prompt": "default"},
            ],
            "retry": {"max_attempts_per_frame_target": 4},
            "budget_usd": 10.0,
            "render": {"window": "33ms", "method": "cdframe"},
        },
        "recording": {"path": "/data/rec.raw", "fingerprint": "sha256:aaaa"},
        "render": {"window": "33ms", "method": "cdframe", "width": 640},
        "prompts": {"default": "v1"},
        "targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku"],
        "mode": "compare",
        "evtui_version": "0.1.0",
    }
    for path, value in changes.items():
        node = m
        *head, last = path.split("__")
        for k in head:
            node = node[k]
        node[last] = value
    return m


def result(frame, target="openai/gpt-4o-mini", state="done", pv="v1", **extra):
    r = {
        "frame": frame,
        "t0_us": frame * 33_000,
        "t1_us": (frame + 1) * 33_000,
        "events": 1000 + frame,
        "target": target,
        "model": target.split("/")[1],
        "prompt_version": pv,
        "state": state,
        "caption": f"frame {frame} by {target}" if state == "done" else None,
        "reason": None if state == "done" else f"{state} because of a test",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.25,
        "latency_s": 0.5,
        "attempts": 1,
        "cache_hit": False,
        "cache_source": None,
        "flags": [],
    }
    r.update(extra)
    return r


def read_lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.fixture
def run(tmp_path):
    return tmp_path / "runs" / "pilot"


# -- creating and resuming ------------------------------------------------------------------
def test_create_writes_the_layout_and_the_manifest(run):
    with JobStore.open(run, manifest()) as s:
        assert s.opened == "created" and s.run_dir == run
    names = {p.name for p in run.iterdir()}
    assert {CAPTIONS, LEDGER, TRACE, "manifest.json", "history.jsonl", ".lock"} <= names
    env = orjson.loads((run / "manifest.json").read_bytes())
    assert env["manifest"] == manifest() and len(env["run_id"]) == 32
    assert [h["event"] for h in read_lines(run / "history.jsonl")] == ["created"]


def test_resume_sees_exactly_what_was_committed(run):
    committed = {}
    with JobStore.open(run, manifest()) as s:
        for batch in range(5):
            rs = [result(batch * 10 + i, extra_field={"nested": [batch, i]}) for i in range(10)]
            rs.append(result(batch, "anthropic/claude-haiku", "failed"))
            rs.append(result(100 + batch, "anthropic/claude-haiku", "skipped"))
            s.commit(rs, [{"frame": r["frame"], "attempt": 1} for r in rs])
            committed.update({(r["frame"], r["target"], "v1"): r for r in rs})
    with JobStore.open(run, manifest()) as s:
        assert s.opened == "resumed"
        done = s.completed()
        assert dict(done) == {k: r["state"] for k, r in committed.items()}
        got = {(r["frame"], r["target"], r["prompt_version"]): r for r in s.results()}
        assert got == committed  # every field, extra ones included, as given
        assert s.status()["done"] == 50 and s.status()["failed"] == 5
        assert s.status()["skipped"] == 5


def test_completed_is_a_mapping_and_pending_a_vector(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(f) for f in (0, 2, 5)] + [result(3, state="failed")])
        c = s.completed()
        assert c[(2, "openai/gpt-4o-mini", "v1")] == "done"
        assert (3, "openai/gpt-4o-mini", "v1") in c and (1, "openai/gpt-4o-mini", "v1") not in c
        assert (0, "nobody/none", "v1") not in c and len(c) == 4
        with pytest.raises(KeyError):
            c[(10**9, "openai/gpt-4o-mini", "v1")]
        assert s.pending("openai/gpt-4o-mini", "v1", 8).tolist() == [1, 4, 6, 7]
        assert c.pending("openai/gpt-4o-mini", "v1", 8).tolist() == [1, 4, 6, 7]
        assert s.pending("anthropic/claude-haiku", "v1", 3).tolist() == [0, 1, 2]
        s.commit([result(1)])
        assert (1, "openai/gpt-4o-mini", "v1") not in c  # a frozen copy


def test_a_second_done_result_for_a_key_is_kept_as_a_duplicate_not_a_caption(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(7)])
        s.commit([result(7, caption="again"), result(8), result(8, caption="twice in one batch")])
        st = s.status()
    caps = read_lines(run / CAPTIONS)
    assert [(r["frame"], r["caption"]) for r in caps] == [
        (7, "frame 7 by openai/gpt-4o-mini"),
        (8, "frame 8 by openai/gpt-4o-mini"),
    ]
    dups = [r for r in read_lines(run / LEDGER) if r["state"] == "duplicate"]
    assert [r["caption"] for r in dups] == ["again", "twice in one batch"]
    assert st["done"] == 2 and st["duplicates"] == 2 and st["spend_usd"] == pytest.approx(1.0)


def test_failed_is_terminal_unless_retry_failed(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0, state="failed"), result(1, state="skipped"), result(2)])
        s.set_total(4)
        assert s.status()["pending"] == 1
    with JobStore.open(run, manifest(), retry_failed=True) as s:
        assert s.pending("openai/gpt-4o-mini", "v1", 4).tolist() == [0, 3]
        assert s.status()["pending"] == 2
        s.commit([result(0)])  # the retry succeeds
        st = s.status()
        assert (st["done"], st["failed"], st["pending"]) == (2, 0, 1)
        outside = read_status(run)  # snapshot from open + the done line in the tail
        assert (outside["done"], outside["failed"], outside["skipped"]) == (2, 0, 1)
    st = read_status(run)
    assert (st["done"], st["failed"], st["skipped"]) == (2, 0, 1)


def test_route_mode_counts_frames_whichever_target_answered(run):
    a, b = "openai/gpt-4o-mini", "anthropic/claude-haiku"
    with JobStore.open(run, manifest(mode="route", total=6)) as s:
        s.commit([result(0, a), result(1, b), result(2, a, "failed"), result(3, b, "skipped")])
        s.commit([result(2, b)])  # the retry went to the other target and succeeded
        s.commit([result(1, a), result(4, a), result(4, b)])  # frames already answered
        assert s.pending(None, "v1", 6).tolist() == [5]
        assert s.pending(a, "v1", 6).tolist() == [1, 3, 5]  # per target, as before
        st = s.status()
        assert (st["done"], st["failed"], st["skipped"], st["pending"]) == (4, 0, 1, 1)
        assert st["duplicates"] == 2 and st["targets"][a]["failed"] == 1
    caps = read_lines(run / CAPTIONS)
    assert sorted(r["frame"] for r in caps) == [0, 1, 2, 4]  # one done record a frame
    (run / SNAPSHOT).unlink()
    cold = read_status(run)
    assert (cold["done"], cold["failed"], cold["skipped"], cold["pending"]) == (4, 0, 1, 1)


def test_the_engines_route_slot_stands_in_for_a_missing_target_and_version(run):
    """A frame skipped before routing names no target and no prompt version, only its slot."""
    skip = {**result(3, state="skipped"), "slot": "route", "target": None, "prompt_version": None}
    with JobStore.open(run, manifest(mode="route", total=4)) as s:
        s.commit([skip, {**result(0), "slot": "route"}])
        assert s.pending(None, "v1", 4).tolist() == [1, 2]
        assert s.pending(None, None, 4).tolist() == [1, 2]
        st = s.status()
        assert (st["done"], st["skipped"], st["pending"], st["superseded"]) == (1, 1, 2, 0)
    with JobStore.open(run, manifest(mode="route", total=4)) as s:  # and it reads back
        assert (3, "route", "") in s.completed()
        got = [(r["frame"], r["target"], r["state"]) for r in s.results()]
        assert got == [(0, "openai/gpt-4o-mini", "done"), (3, None, "skipped")]


def test_numpy_integers_and_unknown_values_are_accepted(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(np.int64(4), events=np.int32(7), score=np.float32(0.5), where=Path("/x"))])
        assert (4, "openai/gpt-4o-mini", "v1") in s.completed()
    (r,) = read_lines(run / CAPTIONS)
    assert r["frame"] == 4 and r["events"] == 7 and r["where"] == "/x"


@pytest.mark.parametrize(
    "bad, expect",
    [
        ({"frame": -1}, r"frame must be an int in \[0, 2\*\*31\)"),
        ({"frame": 2**40}, "frame must be an int in"),
        ({"frame": True}, "frame must be an int"),
        ({"state": "pending"}, "state must be done, failed or skipped"),
        ({"target": ""}, "needs a target"),
        ({"prompt_version": 3}, "prompt_version must be a string"),
        ({"caption": None}, "needs a caption"),
    ],
)
def test_commit_refuses_malformed_results_and_writes_nothing(run, bad, expect):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0)])
        with pytest.raises(ValueError, match=expect):
            s.commit([result(1), {**result(2), **bad}], [{"frame": 1}])
        assert len(s.completed()) == 1
    assert len(read_lines(run / CAPTIONS)) == 1 and (run / TRACE).read_bytes() == b""


def test_results_of_one_frame_and_its_trace(run):
    with JobStore.open(run, manifest()) as s:
        s.commit(
            [result(12), result(12, "anthropic/claude-haiku", "failed"), result(120)],
            [
                {"frame": 12, "target": "openai/gpt-4o-mini", "outcome": "429", "delay_s": 1.2},
                {"frame": 120, "outcome": "ok"},
                {"frame": 12, "target": "openai/gpt-4o-mini", "outcome": "ok"},
            ],
        )
        s.commit([result(12, "anthropic/claude-haiku")], [{"frame": 12, "outcome": "ok", "n": 3}])
        got = list(s.results(frame=12))
        assert [(r["target"], r["state"]) for r in got] == [
            ("anthropic/claude-haiku", "done"),
            ("openai/gpt-4o-mini", "done"),
        ]
        assert [t["outcome"] for t in s.trace(12)] == ["429", "ok", "ok"]
        assert s.trace(7) == []


def test_commit_is_safe_from_several_threads(run):
    with JobStore.open(run, manifest()) as s:

        def work(t):
            for b in range(20):
                s.commit([result(t * 1000 + b * 10 + i) for i in range(10)], [{"frame": t}])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert s.status()["done"] == 800
    assert len(read_lines(run / CAPTIONS)) == 800 and len(read_lines(run / TRACE)) == 80


# -- crash repair ---------------------------------------------------------------------------
def test_a_torn_last_line_is_cut_and_nothing_before_it_is_lost(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(f) for f in range(10)], [{"frame": f} for f in range(10)])
    whole = (run / CAPTIONS).read_bytes()
    with open(run / CAPTIONS, "ab") as f:
        f.write(jl.dump(result(10))[:37])  # a write killed midway
    with open(run / TRACE, "ab") as f:
        f.write(b'{"frame": 10, "outc')
    with JobStore.open(run, manifest()) as s:
        assert len(s.repairs) == 2 and all("torn last line" in r for r in s.repairs)
        assert (run / CAPTIONS).read_bytes() == whole
        assert len(s.completed()) == 10
        s.commit([result(10)], [{"frame": 10}])
    assert [r["frame"] for r in read_lines(run / CAPTIONS)] == list(range(11))
    assert len(read_lines(run / TRACE)) == 11
    assert "repairs" in read_lines(run / "history.jsonl")[1]


def test_read_status_ignores_a_torn_tail_without_cutting_it(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(f) for f in range(3)])
    with open(run / CAPTIONS, "ab") as f:
        f.write(b'{"frame": 3, "tar')
    size = (run / CAPTIONS).stat().st_size
    (run / SNAPSHOT).unlink()
    assert read_status(run)["done"] == 3
    assert (run / CAPTIONS).stat().st_size == size


@pytest.mark.parametrize(
    "line, expect",
    [
        (b'{"frame": 1, "target": "x"}\n', "expected a JSON object with frame"),
        (b"[1, 2, 3]\n", "expected a JSON object with frame"),
        (b'{"frame": 1, "tar\n', "invalid JSON"),
        (b"\n", "an empty line"),
    ],
)
def test_a_bad_complete_line_is_an_error_naming_file_and_line(run, line, expect):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0), result(1)])
    body = (run / CAPTIONS).read_bytes().splitlines(keepends=True)
    (run / CAPTIONS).write_bytes(body[0] + line + body[1])
    with pytest.raises(JobCorrupt) as e:
        JobStore.open(run, manifest())
    msg = str(e.value)
    assert f"{run / CAPTIONS}:2 (byte {len(body[0])})" in msg and expect in msg
    assert "\n" not in msg
    with pytest.raises(JobCorrupt):
        read_status(run)


# -- settings --------------------------------------------------------------------------------
def test_changes_that_alter_results_are_refused_naming_each(run):
    JobStore.open(run, manifest()).close()
    changed = manifest(
        render__window="50ms",
        recording__fingerprint="sha256:bbbb",
        prompts={"default": "v2"},
    )
    changed["config"]["targets"][0]["max_output_tokens"] = 50
    changed["config"]["budget_usd"] = 99.0
    with pytest.raises(JobMismatch) as e:
        JobStore.open(run, changed)
    lines = str(e.value).splitlines()
    assert "  render.window: 33ms -> 50ms" in lines
    assert "  recording.fingerprint: sha256:aaaa -> sha256:bbbb" in lines
    assert "  prompts.default: v1 -> v2" in lines
    assert "  config.targets[openai/gpt-4o-mini].max_output_tokens: (absent) -> 50" in lines
    assert not any("budget" in x for x in lines)  # harmless: not blamed
    assert {d.path for d in e.value.differences} >= {"render.window", "prompts.default"}
    assert read_lines(run / "history.jsonl")[-1]["event"] == "created"  # nothing recorded


def test_harmless_changes_are_accepted_and_recorded_without_secrets(run):
    JobStore.open(run, manifest()).close()
    changed = manifest()
    c = changed["config"]
    c["budget_usd"] = 50.0
    c["retry"]["max_attempts_per_frame_target"] = 8
    c["targets"][1]["weight"] = 3.0
    c["targets"].reverse()  # order of targets is no difference
    c["providers"]["openai"]["keys"] = [{"key": SECRET}]
    c["providers"]["openai"]["timeout_s"] = 120
    c["providers"]["gemini"] = {"protocol": "gemini", "keys": [{"key": SECRET}]}
    c["cache"] = {"threshold": 0.1}
    changed["evtui_version"] = "0.2.0"
    changed["recording"]["path"] = "/moved/rec.raw"
    with JobStore.open(run, changed) as s:
        assert s.opened == "accepted"
        paths = {d.path for d in s.differences}
        assert "config.budget_usd" in paths and "config.providers.openai.keys" in paths
        assert all(d.harmless for d in s.differences)
    assert (
        orjson.loads((run / "manifest.json").read_bytes())["manifest"]["evtui_version"] == "0.2.0"
    )
    event = read_lines(run / "history.jsonl")[-1]
    assert event["event"] == "accepted"
    assert "config.providers.openai.keys: (changed)" in event["differences"]
    for p in run.iterdir():
        if p.name != "manifest.json":  # the caller's config is written as given
            assert SECRET.encode() not in p.read_bytes(), p.name


def test_force_continues_and_new_prompt_versions_start_from_scratch(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(f) for f in range(4)])
        s.set_total(6)
    v2 = manifest(prompts={"default": "v2"})
    with JobStore.open(run, v2, on_mismatch="force") as s:
        assert s.opened == "forced" and [str(d) for d in s.differences] == [
            "prompts.default: v1 -> v2"
        ]
        assert s.pending("openai/gpt-4o-mini", "v2", 6).tolist() == list(range(6))
        s.commit([result(0, pv="v2")])
        s.set_total(6)
        st = s.status()
        assert (st["done"], st["superseded"], st["pending"]) == (1, 4, 5)
    assert read_lines(run / "history.jsonl")[-1]["event"] == "forced"


def test_new_leaves_the_run_alone_and_resumes_its_sibling_next_time(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0)])
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != SNAPSHOT}
    other = manifest(render__window="50ms")
    with JobStore.open(run, other, on_mismatch="new") as s:
        assert s.run_dir == run.with_name("pilot-2") and s.opened == "new"
        s.commit([result(5)])
    with JobStore.open(run, other, on_mismatch="new") as s:
        assert s.run_dir == run.with_name("pilot-2") and s.opened == "resumed"
        assert list(s.completed()) == [(5, "openai/gpt-4o-mini", "v1")]
    third = manifest(render__window="10ms")
    with JobStore.open(run, third, on_mismatch="new") as s:
        assert s.run_dir == run.with_name("pilot-3")
    with JobStore.open(run, manifest(), on_mismatch="new") as s:
        assert s.run_dir == run and list(s.completed()) == [(0, "openai/gpt-4o-mini", "v1")]
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.name != SNAPSHOT}
    assert {k: v for k, v in after.items() if k != "history.jsonl"} == {
        k: v for k, v in before.items() if k != "history.jsonl"
    }


def test_a_closed_store_refuses_writes(run):
    s = JobStore.open(run, manifest())
    s.close()
    s.close()  # twice is fine
    with pytest.raises(JobError, match="closed"):
        s.commit([result(0)])


def test_a_corrupt_run_is_refused_before_its_manifest_changes(run):
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0)])
    with open(run / CAPTIONS, "ab") as f:
        f.write(b"{}\n")
    before = (run / "manifest.json").read_bytes()
    with pytest.raises(JobCorrupt):
        JobStore.open(run, manifest(evtui_version="9"), on_mismatch="force")
    assert (run / "manifest.json").read_bytes() == before


def test_job_files_without_a_manifest_are_refused(run):
    run.mkdir(parents=True)
    (run / CAPTIONS).write_bytes(jl.dump(result(0)))
    with pytest.raises(JobError, match=r"no manifest\.json"):
        JobStore.open(run, manifest())


# -- the lock -------------------------------------------------------------------------------
HOLDER = """
import sys
from evtui.jobs import JobStore
s = JobStore.open(sys.argv[1], {"config": {}, "prompts": {"default": "v1"}})
s.commit([dict(frame=i, target="a/b", prompt_version="v1", state="done", caption="c",
               cost_usd=0.5) for i in range(3)])
print("ready", flush=True)
sys.stdin.readline()
"""


def test_a_second_process_is_refused_naming_the_holder_and_sigkill_frees_it(run):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(JobLocked) as e:
            JobStore.open(run, {"config": {}, "prompts": {"default": "v1"}})
        assert e.value.pid == p.pid and f"process {p.pid}" in str(e.value)
        st = read_status(run)  # a reader is never refused
        assert st["done"] == 3 and st["writer"] == {"pid": p.pid, "live": True}
    finally:
        p.kill()
        p.wait()
    with JobStore.open(run, {"config": {}, "prompts": {"default": "v1"}}) as s:
        assert len(s.completed()) == 3
    assert read_status(run)["writer"] == {"pid": None, "live": False}


def test_the_same_process_cannot_open_a_run_twice(run):
    with JobStore.open(run, manifest()), pytest.raises(JobLocked):
        JobStore.open(run, manifest())
    JobStore.open(run, manifest()).close()  # released on close


# -- status ---------------------------------------------------------------------------------
def test_status_and_read_status_agree_while_the_run_is_live(run):
    with JobStore.open(run, manifest()) as s:
        s.set_total(20)
        s.commit(
            [result(f) for f in range(6)]
            + [result(f, "anthropic/claude-haiku") for f in range(3)]
            + [result(9, "anthropic/claude-haiku", "failed", reason="rate limited")]
            + [result(8, "anthropic/claude-haiku", "failed", reason="rate limited")]
            + [result(7, "anthropic/claude-haiku", "skipped", reason="empty frame")]
            + [result(1, cache_hit=True, cost_usd=0.0)]
        )
        s.commit([result(6, cache_hit=True, cost_usd=0.0)])  # after the snapshot: the tail path
        live = s.status()
        assert live["done"] == 10 and live["failed"] == 2 and live["skipped"] == 1
        assert live["pending"] == 7 and live["duplicates"] == 1
        assert live["spend_usd"] == pytest.approx(0.25 * 12)
        assert live["errors"] == {"failed": {"rate limited": 2}, "skipped": {"empty frame": 1}}
        t = live["targets"]["anthropic/claude-haiku"]
        assert (t["done"], t["failed"], t["skipped"]) == (3, 2, 1)
        assert live["targets"]["openai/gpt-4o-mini"]["cache_hits"] == 1
        outside = read_status(run)
        assert outside["writer"]["live"] and outside["writer"]["pid"] == os.getpid()
        for k in (
            "done",
            "failed",
            "skipped",
            "pending",
            "total",
            "spend_usd",
            "errors",
            "targets",
        ):
            assert outside[k] == live[k], k
    (run / SNAPSHOT).unlink()
    cold = read_status(run)  # no snapshot: the files read whole
    for k in ("done", "failed", "skipped", "pending", "spend_usd", "errors", "targets"):
        assert cold[k] == live[k], k


def test_total_can_come_from_the_manifest(run):
    with JobStore.open(run, manifest(total=10)) as s:
        s.commit([result(0)])
        assert s.status()["pending"] == 9
    (run / SNAPSHOT).unlink()
    assert read_status(run)["pending"] == 9


def test_read_status_of_a_directory_without_a_run(tmp_path):
    with pytest.raises(JobError, match="not a run directory"):
        read_status(tmp_path)


# -- reviews --------------------------------------------------------------------------------
def test_reviews_are_durable_and_checked(run):
    with JobStore.open(run, manifest()) as s:
        s.add_review({"frame": 3, "target": "openai/gpt-4o-mini", "decision": "accept"})
        s.add_review({"frame": 3, "target": "a/b", "decision": "edit", "text": "better", "at": "t"})
        with pytest.raises(ValueError, match="decision"):
            s.add_review({"frame": 3, "target": "a/b", "decision": "maybe"})
        with pytest.raises(ValueError, match="needs its text"):
            s.add_review({"frame": 3, "target": "a/b", "decision": "edit"})
    with JobStore.open(run, manifest()) as s:
        revs = s.reviews()
    assert [r["decision"] for r in revs] == ["accept", "edit"] and revs[1]["at"] == "t"
    assert revs[0]["at"].endswith("Z")


# -- bad conditions (in-process) ------------------------------------------------------------
def test_a_failed_write_rolls_every_file_back(run, monkeypatch):
    """EROFS during a commit cannot be produced for real (a filesystem with files open for
    writing refuses to be remounted read-only), so the failure is injected at the fsync of
    captions.jsonl, after trace and ledger were written: all three must be cut back."""
    with JobStore.open(run, manifest()) as s:
        s.commit([result(0), result(1, state="failed")], [{"frame": 0}])
        sizes = {n: (run / n).stat().st_size for n in (CAPTIONS, LEDGER, TRACE)}
        real_sync = jl.Appender.sync

        def sync(self):
            if self.path.name == CAPTIONS:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            real_sync(self)

        monkeypatch.setattr(jl.Appender, "sync", sync)
        with pytest.raises(JobWriteError) as e:
            s.commit([result(2), result(3, state="skipped")], [{"frame": 2}])
        msg = str(e.value)
        assert str(run / CAPTIONS) in msg and "Read-only file system (EROFS)" in msg
        assert "\n" not in msg and "intact" in msg
        assert {n: (run / n).stat().st_size for n in sizes} == sizes
        assert len(s.completed()) == 2
        monkeypatch.setattr(jl.Appender, "sync", real_sync)
        s.commit([result(2)])  # the store goes on once writes work again
    with JobStore.open(run, manifest()) as s:
        assert sorted(k[0] for k in s.completed()) == [0, 1, 2]
