"""The engine in its own process (what the app uses): same snapshot, events, commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evtui.engine.process import RemoteJob, RemoteJobError
from tests.engine_support import (
    COMPARE_CONFIG,
    KEYS,
    SAMPLE,
    sim_in_thread,
    wait,
    write_config,
)


def test_remote_job_runs_reviews_reruns_and_drains(tmp_path: Path, monkeypatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", COMPARE_CONFIG, sim)
        job = RemoteJob.open(cfg, SAMPLE, tmp_path / "run", workers=1)
        try:
            # ui.engine_nice (5 by default): the engine yields the CPU to the app first.
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, job._proc.pid) == min(mine + 5, 19)
            src = job.start_thread()
            wait(lambda: src.snapshot.state == "idle")
            assert src.snapshot.done + src.snapshot.skipped == 2 * job.n_frames
            kinds = {e.kind for e in src.events.drain()}
            assert "caption" in kinds
            assert job.engine.slots == ("anthropic/claude-haiku-4-5", "openai/gpt-4o")
            # Reviews are durable when add_review returns (the child wrote them).
            job.store.add_review({"frame": 3, "target": "openai/gpt-4o", "decision": "accept"})
            assert job.store.reviews()[-1]["decision"] == "accept"
            before = sim.stats.count()
            job.rerun(5, ["openai/gpt-4o"])
            wait(lambda: sim.stats.count() == before + 1)
            assert len(list(job.store.results())) == 2 * job.n_frames
            assert job.store.trace(5)
            src.drain()
            result = src.join(30)
            assert result is not None and result.state == "done"
        finally:
            job.close()
    assert not job._proc.is_alive()


def test_remote_job_says_why_it_cannot_open(tmp_path: Path, monkeypatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\x00garbage" * 50)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(COMPARE_CONFIG.replace("@openai", "http://127.0.0.1:9/v1").replace(
        "@anthropic", "http://127.0.0.1:9"))  # fmt: skip
    with pytest.raises(RemoteJobError) as e:
        RemoteJob.open(cfg, junk, tmp_path / "run")
    assert str(junk) in str(e.value) and "\n" not in str(e.value)
    assert os.environ.get("EVTUI_T_KEY1") not in str(e.value)
