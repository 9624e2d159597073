"""The store under real failures: SIGKILL mid-write, a full disk, a read-only filesystem.

Each runs a real child process; nothing here mocks a system call.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from evtui.jobs import JobStore, read_status

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("a/x", "b/y", "c/z")
MANIFEST = {"config": {}, "prompts": {"default": "v1"}, "targets": list(TARGETS), "mode": "compare"}

CHAOS_CHILD = f"""
import random, sys, time
from evtui.jobs import JobStore
run_dir, seed, n_frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
store = JobStore.open(run_dir, {MANIFEST!r})
todo = [(f, t) for t in {TARGETS!r} for f in store.pending(t, "v1", n_frames).tolist()]
rng.shuffle(todo)
print("ready", len(todo), flush=True)
pad = "x" * 600
b = 0
while todo:
    n = rng.randint(1, 150)
    batch, todo = todo[:n], todo[n:]
    tag = f"{{seed}}.{{b}}"
    results = []
    for f, t in batch:
        st = rng.choices(("done", "failed", "skipped"), (90, 5, 5))[0]
        results.append({{"frame": f, "target": t, "prompt_version": "v1", "state": st,
                        "caption": f"{{f}} {{t}} {{pad}}" if st == "done" else None,
                        "reason": None if st == "done" else st, "cost_usd": 0.001, "batch": tag}})
    store.commit(results, [{{"frame": f, "batch": tag}} for f, _ in batch])
    print("ack", tag, len(batch), flush=True)
    b += 1
    time.sleep(rng.random() * 0.004)
store.close()
print("finished", flush=True)
"""


def complete_lines(path: Path) -> tuple[list[dict], bool]:
    """Every complete line parsed (each must parse), and whether a torn tail follows them."""
    data = path.read_bytes() if path.exists() else b""
    cut = data.rfind(b"\n") + 1
    return [orjson.loads(x) for x in data[:cut].splitlines()], cut != len(data)


def check_run(run: Path, acked: dict[str, int]) -> bool:
    caps, torn_c = complete_lines(run / "captions.jsonl")
    ledger, torn_l = complete_lines(run / "ledger.jsonl")
    trace, torn_t = complete_lines(run / "trace.jsonl")
    keys = Counter((r["frame"], r["target"]) for r in caps)
    assert not [k for k, n in keys.items() if n > 1], "a key was recorded done twice"
    assert not [r for r in ledger if r["state"] == "duplicate"]  # nothing was redone
    per_batch = Counter(r["batch"] for r in caps + ledger)
    per_trace = Counter(r["batch"] for r in trace)
    lost = {tag: (n, per_batch[tag]) for tag, n in acked.items() if per_batch[tag] != n}
    assert not lost, f"committed batches lost or grown: {lost}"
    assert all(per_trace[tag] == n for tag, n in acked.items())
    return torn_c or torn_l or torn_t


def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path):
    run = tmp_path / "run"
    n_frames, kills_wanted = 4000, 12
    rng = random.Random(20240601)
    acked: dict[str, int] = {}
    kills = torn = 0
    for i in range(kills_wanted + 5):
        p = subprocess.Popen(
            [sys.executable, "-c", CHAOS_CHILD, str(run), str(i), str(n_frames)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert p.stdout.readline().startswith("ready")
        if kills < kills_wanted:
            time.sleep(rng.uniform(0.002, 0.06))
            p.send_signal(signal.SIGKILL)
        out = p.stdout.read()
        p.wait()
        for line in out.splitlines():
            if line.startswith("ack"):
                _, tag, n = line.split()
                acked[tag] = int(n)
        if p.returncode == -signal.SIGKILL:
            kills += 1
        torn += check_run(run, acked)
        if "finished" in out:
            break
    assert kills >= 10, f"only {kills} kills landed before the job finished"
    assert "finished" in out
    with JobStore.open(run, MANIFEST) as s:
        assert len(s.completed()) == n_frames * len(TARGETS)
        assert all(s.pending(t, "v1", n_frames).size == 0 for t in TARGETS)
    st = read_status(run)
    assert st["done"] + st["failed"] + st["skipped"] == n_frames * len(TARGETS)
    caps, _ = complete_lines(run / "captions.jsonl")
    assert st["done"] == len(caps)
    print(f"{kills} kills, {torn} left a torn last line, {len(acked)} batches acknowledged")


BIG_WRITE_CHILD = f"""
import sys
from evtui.jobs import JobStore
s = JobStore.open(sys.argv[1], {MANIFEST!r})
row = {{"target": "a/x", "prompt_version": "v1", "state": "done"}}
s.commit([dict(row, frame=i, caption="small") for i in range(10)])
print("acked", flush=True)
s.commit([dict(row, frame=10 + i, caption="x" * 4000) for i in range(12000)])  # ~48 MB
print("acked", flush=True)
"""


def test_sigkill_inside_a_write_leaves_a_torn_line_that_the_next_open_cuts(tmp_path):
    """A kill that lands while os.write copies a large batch leaves part of it on disk."""
    run = tmp_path / "run"
    cap = run / "captions.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-c", BIG_WRITE_CHILD, str(run)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert p.stdout.readline().strip() == "acked"
    small = cap.stat().st_size
    while cap.stat().st_size == small and p.poll() is None:
        time.sleep(0.0002)  # kill as soon as the big batch starts reaching the file
    p.kill()
    p.wait()
    data = cap.read_bytes()
    if data.endswith(b"\n"):
        pytest.skip("the kill landed outside the write this time")
    whole = data[: data.rfind(b"\n") + 1]
    with JobStore.open(run, MANIFEST) as s:
        assert len(s.repairs) == 1 and "captions.jsonl" in s.repairs[0]
        assert cap.read_bytes() == whole  # only the torn fragment went
        done = s.completed()
        assert {k[0] for k in done} >= set(range(10))  # the acknowledged batch
        assert len(done) == whole.count(b"\n")  # and every complete line of the torn one
        s.commit(
            [
                {
                    "frame": 10**6,
                    "target": "a/x",
                    "prompt_version": "v1",
                    "state": "done",
                    "caption": "after",
                }
            ]
        )
    assert complete_lines(cap) == (complete_lines(cap)[0], False)


FULL_CHILD = f"""
import json, os, sys
from evtui.jobs import JobStore, JobWriteError
run_dir, ballast = sys.argv[1], sys.argv[2]
if ballast != "-":
    with open(ballast, "wb") as f:
        f.write(b"b" * 256 * 1024)
names = ("captions.jsonl", "ledger.jsonl", "trace.jsonl")
sizes = lambda: {{n: os.path.getsize(os.path.join(run_dir, n)) for n in names}}
store = JobStore.open(run_dir, {MANIFEST!r})
acked, error, frame = 0, None, 0
while frame < 10**6:
    results = [{{"frame": frame + i, "target": "a/x", "prompt_version": "v1",
                "state": "failed" if i == 7 else "done", "caption": "c" * 400, "reason": "r"}}
               for i in range(20)]
    before = sizes()
    try:
        store.commit(results, [{{"frame": frame + i}} for i in range(20)])
    except JobWriteError as e:
        error, code, after = str(e), e.errno, sizes()
        break
    acked += 20
    frame += 20
store.close()
if ballast != "-":
    os.unlink(ballast)  # the user frees space, then resumes
s = JobStore.open(run_dir, {MANIFEST!r})
report = dict(error=error, errno=code, before=before, after=after, acked=acked,
              resumed=len(s.completed()), repairs=list(s.repairs))
if ballast != "-":
    s.commit([{{"frame": frame, "target": "a/x", "prompt_version": "v1", "state": "done",
               "caption": "after"}}])
    report["after_free"] = len(s.completed())
s.close()
print(json.dumps(report))
"""


def check_full_report(report: dict, errname: str, text: str) -> None:
    assert report["error"] and "\n" not in report["error"]
    assert f"{text} ({errname})" in report["error"] and "intact" in report["error"]
    assert any(f"/run/{n}.jsonl: " in report["error"] for n in ("captions", "ledger", "trace"))
    assert report["after"] == report["before"], "a failed commit left bytes behind"
    assert report["acked"] >= 20 and report["resumed"] == report["acked"]
    assert report["repairs"] == []


def test_a_full_disk_keeps_every_committed_batch_rlimit(tmp_path):
    """RLIMIT_FSIZE fails writes past the limit with EFBIG, as a full disk does with ENOSPC."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    r = subprocess.run(
        [sys.executable, "-c", FULL_CHILD, str(tmp_path / "run"), "-"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=limit,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    check_full_report(json.loads(r.stdout), "EFBIG", "File too large")


def _userns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10)
    return r.returncode == 0


needs_userns = pytest.mark.skipif(
    not _userns_works(), reason="needs unshare -rm (user + mount namespaces) for a private tmpfs"
)


def in_tmpfs(mnt: Path, size: str, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a child that sees a fresh tmpfs of `size` at `mnt` (nobody else does)."""
    mnt.mkdir()
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    cmd = ["unshare", "-rm", "sh", "-c", script, "sh", size, str(mnt), sys.executable, "-c", code]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


@needs_userns
def test_a_full_disk_keeps_every_committed_batch_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    r = in_tmpfs(mnt, "512k", FULL_CHILD, str(mnt / "run"), str(mnt / "ballast"))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    check_full_report(report, "ENOSPC", "No space left on device")
    assert report["after_free"] == report["acked"] + 1


RO_CHILD = f"""
import subprocess, sys
from evtui.jobs import JobError, JobStore, read_status
run_dir, mnt = sys.argv[1], sys.argv[2]
with JobStore.open(run_dir, {MANIFEST!r}) as s:
    s.commit([{{"frame": i, "target": "a/x", "prompt_version": "v1", "state": "done",
               "caption": "c"}} for i in range(3)])
subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
try:
    JobStore.open(run_dir, {MANIFEST!r})
    print("opened")
except JobError as e:
    print(type(e).__name__, e)
print("status", read_status(run_dir)["done"])
"""


@needs_userns
def test_a_read_only_run_directory_is_a_clear_error_and_status_still_reads_it(tmp_path):
    mnt = tmp_path / "mnt"
    r = in_tmpfs(mnt, "1m", RO_CHILD, str(mnt / "run"), str(mnt))
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    assert first.startswith("JobWriteError cannot write ")
    assert "Read-only file system (EROFS)" in first and "must be writable" in first
    assert second == "status 3"
