"""`evtui run … --no-ui` as a user runs it: a real subprocess against the simulator.

Includes the kill-safety test of issue 5: SIGKILL a 2,000-frame run at random moments,
resume, and check that nothing was lost, nothing recorded twice, and that requests paid
twice are bounded by what could have been in flight at each kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from evtui.events.recording import Recording
from evtui.events.windows import WindowSpec
from tests.engine_support import KEYS, sim_in_thread, write_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "sample.evt3.raw"

CONFIG = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: anthropic/claude-haiku-4-5, weight: 1, fallbacks: [openai/gpt-4o]}
  - {id: openai/gpt-4o, weight: 1}
prompts: {default: {text: Describe the frame.}}
render: {window: 33ms, overlap: "%(overlap)s", width: 160, height: 120}
engine: {max_in_flight: %(inflight)d}
"""


def evtui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **KEYS}
    return subprocess.run(
        [sys.executable, "-m", "evtui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def test_run_completes_and_resumes_without_sending_again(tmp_path: Path) -> None:
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 64}, sim)
        run_dir = tmp_path / "run"
        r = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
        assert r.returncode == 0, r.stderr
        caps = lines(run_dir / "captions.jsonl")
        assert len(caps) == 364 == len({c["frame"] for c in caps})
        for c in caps:
            assert {"frame", "target", "caption", "cost_usd", "cache_hit"} <= set(c)
            assert c["caption"] and c["target"] in ("anthropic/claude-haiku-4-5", "openai/gpt-4o")
        sent = sim.stats.count()
        assert sent == 364
        assert "anthropic/claude-haiku-4-5" in r.stderr  # the per-target summary
        again = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
        assert again.returncode == 0, again.stderr
        assert "0 frame×slot pairs to do" in again.stderr
        assert sim.stats.count() == sent
        assert len(lines(run_dir / "captions.jsonl")) == 364
        # status, explain and export read the finished run.
        st = evtui("status", str(run_dir), "--json")
        assert st.returncode == 0, st.stderr
        counts = orjson.loads(st.stdout)
        assert (counts["done"], counts["failed"], counts["skipped"], counts["pending"]) == (
            364,
            0,
            0,
            0,
        )
        ex = evtui("explain", str(run_dir), "7")
        assert ex.returncode == 0
        assert "weighted pick" in ex.stdout and "HTTP 200" in ex.stdout and "caption (" in ex.stdout
        assert "key#1" in ex.stdout and KEYS["EVTUI_T_KEY1"] not in ex.stdout
        out = tmp_path / "wds"
        wd = evtui("export", str(run_dir), "--format", "webdataset", "-o", str(out),
                   "--shard-size", "200")  # fmt: skip
        assert wd.returncode == 0, wd.stderr
        import tarfile

        with tarfile.open(out / "000000.tar") as tar:
            names = tar.getnames()
            assert names[:3] == ["000000000.png", "000000000.json", "000000000.txt"]
            png = tar.extractfile(names[0]).read()  # type: ignore[union-attr]
            assert png.startswith(b"\x89PNG")
        assert sorted(p.name for p in out.iterdir()) == ["000000.tar", "000001.tar"]
        csv = evtui("export", str(run_dir), "--format", "csv", "-o", str(tmp_path / "c.csv"))
        assert csv.returncode == 0
        assert len((tmp_path / "c.csv").read_text().splitlines()) == 365
        # A change that would change results is refused, naming it.
        changed = write_config(
            tmp_path / "job2.yaml", CONFIG % {"overlap": "10%", "inflight": 64}, sim
        )
        refused = evtui("run", str(changed), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
        assert refused.returncode == 2
        assert "render.overlap" in refused.stderr and "Traceback" not in refused.stderr


def test_bad_config_and_bad_recording_exit_2_with_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {}\ntargets: []\nprompts: {}\nmode: fast\n")
    r = evtui("run", str(bad), str(SAMPLE), "--no-ui", "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "mode" in r.stderr and str(bad) in r.stderr
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 8}, sim)
        junk = tmp_path / "junk.raw"
        junk.write_bytes(b"\x00\x01garbage" * 100)
        r = evtui("run", str(cfg), str(junk), "--no-ui", "--run-dir", str(tmp_path / "r2"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(junk) in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_sigterm_drains_in_flight_requests_and_exits_resumable(tmp_path: Path) -> None:
    scen = "providers:\n  anthropic: {latency_ms: 150}\n  openai: {latency_ms: 150}\n"
    with sim_in_thread(scen) as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 8}, sim)
        run_dir = tmp_path / "run"
        p = subprocess.Popen(
            [sys.executable, "-m", "evtui.cli", "run", str(cfg), str(SAMPLE), "--no-ui",
             "--run-dir", str(run_dir)],
            cwd=ROOT, env={**os.environ, **KEYS}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while sim.stats.count() < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=60)[1]
        answered = sim.stats.count(status=200)
    assert p.returncode == 130, err
    assert "terminate: draining" in err and "Traceback" not in err
    # Drained: every answer that came back was recorded before exiting.
    assert len(lines(run_dir / "captions.jsonl")) == answered < 364


def test_two_processes_on_one_run_the_second_refuses(tmp_path: Path) -> None:
    scen = "providers:\n  anthropic: {latency_ms: 200}\n  openai: {latency_ms: 200}\n"
    with sim_in_thread(scen) as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 4}, sim)
        run_dir = tmp_path / "run"
        env = {**os.environ, **KEYS}
        first = subprocess.Popen(
            [sys.executable, "-m", "evtui.cli", "run", str(cfg), str(SAMPLE), "--no-ui",
             "--run-dir", str(run_dir)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (run_dir / "captions.jsonl").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            second = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
            assert second.returncode == 2
            assert str(first.pid) in second.stderr and "Traceback" not in second.stderr
        finally:
            first.send_signal(signal.SIGINT)
            out = first.communicate(timeout=60)[1]
        assert first.returncode == 130, out
        assert "run the same command to continue" in out


@pytest.mark.parametrize("kills", [10])
def test_sigkill_at_random_moments_loses_nothing_and_pays_twice_only_in_flight(
    tmp_path: Path, kills: int
) -> None:
    inflight = 16
    scen = "providers:\n  anthropic: {latency_ms: 40}\n  openai: {latency_ms: 40}\n"
    rng = random.Random(20261122)
    with sim_in_thread(scen) as sim:
        # 82 % overlap: 2,000 windows from the 12 s sample.
        cfg = write_config(
            tmp_path / "job.yaml", CONFIG % {"overlap": "82%", "inflight": inflight}, sim
        )
        run_dir = tmp_path / "run"
        env = {**os.environ, **KEYS}
        argv = [sys.executable, "-m", "evtui.cli", "run", str(cfg), str(SAMPLE), "--no-ui",
                "--run-dir", str(run_dir)]  # fmt: skip
        done_after: list[int] = []
        for _ in range(kills):
            p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
            # Wait until it is sending, then kill at a random moment.
            before = sim.stats.count()
            deadline = time.monotonic() + 30
            while sim.stats.count() == before and time.monotonic() < deadline:
                if p.poll() is not None:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            p.send_signal(signal.SIGKILL)
            p.wait(30)
            caps = run_dir / "captions.jsonl"
            done_after.append(len(caps.read_bytes().splitlines()) if caps.exists() else 0)
        final = evtui("run", *argv[4:], timeout=300)
        assert final.returncode == 0, final.stderr
        paid = sim.stats.count(status=200)
    assert done_after[-1] < 2000  # the kills really interrupted the job
    caps = lines(run_dir / "captions.jsonl")  # every line parses
    per_frame = Counter(c["frame"] for c in caps)
    n = len(per_frame)
    expected = Recording(SAMPLE).window_count(WindowSpec.parse("33ms", overlap="82%"))
    assert expected >= 2000
    skipped = {x["frame"] for x in lines(run_dir / "ledger.jsonl") if x["state"] == "skipped"}
    assert all(x["reason"].startswith("near-empty") for x in lines(run_dir / "ledger.jsonl"))
    assert set(per_frame.values()) == {1}  # exactly one done record each
    assert n + len(skipped) == expected and not skipped & set(per_frame)
    assert all(c["caption"] for c in caps)
    # Paid twice: answers the provider gave that never became durable before a kill.
    assert paid - n <= kills * inflight
    assert len((run_dir / "trace.jsonl").read_bytes().splitlines()) >= n


def _limit_file_size(limit: int):
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return apply


def test_disk_full_mid_run_stops_cleanly_and_a_resume_finishes(tmp_path: Path) -> None:
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 16}, sim)
        run_dir = tmp_path / "run"
        argv = [sys.executable, "-m", "evtui.cli", "run", str(cfg), str(SAMPLE), "--no-ui",
                "--run-dir", str(run_dir)]  # fmt: skip
        env = {**os.environ, **KEYS}
        full = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
            preexec_fn=_limit_file_size(60_000),
        )  # fmt: skip
        assert full.returncode == 2, full.stderr
        assert "Traceback" not in full.stderr
        assert "cannot write results" in full.stderr and "File too large" in full.stderr
        kept = lines(run_dir / "captions.jsonl")  # what was acknowledged is intact
        assert 0 < len(kept) < 364
        again = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
        assert again.returncode == 0, again.stderr
    caps = lines(run_dir / "captions.jsonl")
    assert len(caps) == 364 == len({c["frame"] for c in caps})
    assert caps[: len(kept)] == kept


def test_unwritable_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    # /proc refuses new directories even to root (a chmod would not stop root).
    run_dir = Path("/proc/evtui-test-run")
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 16}, sim)
        r = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(run_dir))
        assert sim.stats.count() == 0  # nothing sent before the directory was usable
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(run_dir) in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_semantic_cache_answers_a_second_run_without_a_request(tmp_path: Path) -> None:
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 32}, sim)
        first = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(tmp_path / "a"))
        assert first.returncode == 0, first.stderr
        sent = sim.stats.count()
        second = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(tmp_path / "b"))
        assert second.returncode == 0, second.stderr
        assert sim.stats.count() == sent  # every frame came from the cache
    a = {c["frame"]: c for c in lines(tmp_path / "a" / "captions.jsonl")}
    b = lines(tmp_path / "b" / "captions.jsonl")
    assert len(b) == len(a)
    for c in b:
        assert c["cache_hit"] and c["cost_usd"] == 0 and c["attempts"] == 0
        src = c["cache_source"]
        assert src["kind"] == "exact" and src["frame"] == c["frame"]
        assert c["caption"] == a[c["frame"]]["caption"]
    stats = evtui("cache", "stats", "--json")
    assert stats.returncode == 0 and orjson.loads(stats.stdout)


def test_exit_1_lists_frames_that_failed_and_exit_3_when_the_budget_is_reached(
    tmp_path: Path,
) -> None:
    # Every key refused for quota: each frame fails permanently, and says why.
    scen = (
        "faults:\n"
        f"  - {{provider: anthropic, kind: quota_exhausted, key: {KEYS['EVTUI_T_KEY3']}}}\n"
        f"  - {{provider: openai, kind: quota_exhausted, key: {KEYS['EVTUI_T_KEY1']}}}\n"
    )
    with sim_in_thread(scen) as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG % {"overlap": "0%", "inflight": 8}, sim)
        r = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(tmp_path / "f"))
        assert r.returncode == 1, r.stderr
        assert "failed permanently" in r.stderr and "frame 0 " in r.stderr
        assert "no usable key" in r.stderr and KEYS["EVTUI_T_KEY1"] not in r.stderr
    with sim_in_thread() as sim:
        text = CONFIG % {"overlap": "0%", "inflight": 8} + "budget_usd: 0.01\n"
        cfg = write_config(tmp_path / "budget.yaml", text, sim)
        r = evtui("run", str(cfg), str(SAMPLE), "--no-ui", "--run-dir", str(tmp_path / "b"))
        assert r.returncode == 3, r.stderr
        assert "budget $0.01 reached" in r.stderr
        caps = lines(tmp_path / "b" / "captions.jsonl")
        assert 0 < len(caps) < 364 and sum(c["cost_usd"] for c in caps) <= 0.01
